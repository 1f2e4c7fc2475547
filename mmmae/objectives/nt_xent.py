"""SimCLR's NT-Xent between two views of each sample, through a BatchNorm projector (ViC-MAE)."""

from collections.abc import Sequence

import gin
import torch
import torch.nn.functional as F
from torch import nn

from mmmae.objectives.contrastive import TemperatureScaled, gather_across_processes, info_nce
from mmmae.objectives.presence import usable_samples
from mmmae.types import mean_tokens


class GatheredBatchNorm(nn.Module):
    """BatchNorm1d (affine, running statistics) over the usable rows of every process's batch.

    (B, H) -> (B, H). In training the mean and biased variance are those of the rows where `rows`
    (B,) is True, all-gathered with gradient (SyncBatchNorm's statistics, which torch computes
    only on accelerators, restricted to present samples), so the output is the same however the
    global batch is split; the running statistics (unbiased variance, `momentum`) follow them
    when at least two rows count. In eval the running statistics normalise. Computed in float32.
    """

    def __init__(self, dim: int, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_var", torch.ones(dim))

    def forward(self, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        x = x.float()
        if self.training:
            x_all, _ = gather_across_processes(x)  # every process gathers, whatever its rows
            rows_all = gather_across_processes(rows.long())[0].float()[:, None]  # (W*B, 1)
            count = rows_all.sum()
            mean = (x_all * rows_all).sum(dim=0) / count.clamp_min(1)
            var = ((x_all - mean) ** 2 * rows_all).sum(dim=0) / count.clamp_min(1)
            with torch.no_grad():
                step = self.momentum * (count > 1).float()
                unbiased = var * count / (count - 1).clamp_min(1)
                self.running_mean.lerp_(mean, step)
                self.running_var.lerp_(unbiased, step)
        else:
            mean, var = self.running_mean, self.running_var
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias


class BatchNormProjector(nn.Module):
    """ViC-MAE's (SimCLR's) projector: `depth` x (Linear(., hidden) - GatheredBatchNorm - ReLU),
    then Linear(., out_dim). (B, in_dim), rows (B,) bool -> (B, out_dim) float32."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int, depth: int):
        super().__init__()
        widths = [in_dim] + [hidden] * depth
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.norms = nn.ModuleList(GatheredBatchNorm(hidden) for _ in range(depth))
        self.out = nn.Linear(widths[-1], out_dim)

    def forward(self, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        for linear, norm in zip(self.linears, self.norms):  # the norm answers in float32: back to the weights'
            x = F.relu(norm(linear(x.to(linear.weight.dtype)), rows))  # dtype (bf16 parameters under FSDP)
        return self.out(x.to(self.out.weight.dtype)).float()


@gin.configurable(module="mmmae")
class NTXent(TemperatureScaled):
    """SimCLR's NT-Xent between two modalities that are views of one sample (ViC-MAE's frames,
    CrossVideoMAE's clip / augmented clip / frame).

    u_m = L2-normalise(projector(mean of outputs[m].encoded over its visible tokens)) (B, E), one
    projector shared by both views, applied to each view on its own (its BatchNorm statistics
    per view, as ViC-MAE's code). Rows: the 2B local embeddings of both views; columns: the 2WB
    embeddings of both views of the global batch (all-gathered with gradient). Each row's
    positive is the other view of its sample; its negatives are the other 2WB - 2 columns
    (itself excluded). A sample missing either view loses its rows and columns (`strict`: an
    error). The loss is the mean over usable local rows, at a fixed temperature.

    ViC-MAE: hidden=4096, depth=2, proj_dim=128, temperature=0.1, weight=0.03.
    """

    full_view_modalities: tuple[str, ...] = ()  # pools the masked pass (the Objective protocol)

    def __init__(self, modalities: Sequence[str] = gin.REQUIRED, in_dim: int = gin.REQUIRED, proj_dim: int = 128,
                 hidden: int = 4096, depth: int = 2, temperature: float = 0.1, weight: float = 1.0,
                 strict: bool = False):
        modalities = tuple(modalities)
        if len(modalities) != 2 or modalities[0] == modalities[1]:
            raise ValueError(f"NTXent.modalities must be two different modalities, got {modalities}")
        if depth < 0 or min(in_dim, proj_dim, hidden) < 1:
            raise ValueError(f"NTXent: in_dim = {in_dim}, proj_dim = {proj_dim}, hidden = {hidden}, depth = {depth}: "
                             "need positive widths and depth >= 0")
        super().__init__("NTXent", temperature, learnable=False)
        self.modalities = modalities
        self.name = f"nt_xent_{modalities[0]}_{modalities[1]}"
        self.weight = weight
        self.strict = strict
        self.projector = BatchNormProjector(in_dim, proj_dim, hidden, depth)

    def embed(self, output, rows: torch.Tensor) -> torch.Tensor:
        """One view's ModalityOutput -> L2-normalised embedding (B, proj_dim) float32; the
        projector's batch statistics take in the `rows` (B,) bool."""
        return F.normalize(self.projector(mean_tokens(output.encoded, output.mask), rows), dim=-1)

    def forward(self, outputs: dict, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        usable, skipped = usable_samples(self.name, self.modalities, outputs, batch, self.strict)  # (B,)
        z1, z2 = (self.embed(outputs[m], usable) for m in self.modalities)  # (B, E) each
        z1_all, offset = gather_across_processes(z1)  # (W*B, E)
        z2_all, _ = gather_across_processes(z2)
        usable_all = gather_across_processes(usable.long())[0].bool()  # (W*B,)
        local, total = z1.shape[0], z1_all.shape[0]
        own = offset + torch.arange(local, device=z1.device)  # each local sample's global row
        query = torch.cat([z1, z2])  # (2B, E): view 1 rows, then view 2 rows
        keys = torch.cat([z1_all, z2_all])  # (2WB, E) in the same layout
        self_column = torch.cat([own, total + own])  # (2B,)
        target = torch.cat([total + own, own])  # the other view of the same sample
        candidates = usable_all.repeat(2)[None] & (torch.arange(2 * total, device=z1.device) != self_column[:, None])
        loss, accuracy = info_nce(query, keys, self.logit_scale(), candidates, target, usable.repeat(2))
        logs = {self.name: loss.detach(), f"{self.name}_accuracy": accuracy.detach(), **skipped}
        return loss, logs
