"""Standardise features with running statistics that training and evaluation share."""

import torch
from torch import nn


class RunningStandardize(nn.Module):
    """(B, D) -> (B, D): (x - mean) / sqrt(var + eps) per feature, with a bias-corrected
    exponential moving mean and variance (Adam's correction, so the first batch is not shrunk
    towards the zero start).

    In training each call first folds the rows selected by `rows` (B,) bool (all if None) into
    the statistics, without gradient, then standardises with them (on the first call, by that
    batch's own moments). In evaluation the statistics stay fixed, so unlike BatchNorm the
    output for a sample never depends on the rest of its batch: retrieval can embed one query
    at a time. The statistics are persistent buffers: checkpoints and exported weights carry
    them. Under DistributedDataParallel, which broadcasts buffers before every forward, each
    process starts a step from rank 0's statistics and folds in its own batch.
    """

    def __init__(self, dim: int, momentum: float = 0.9, eps: float = 1e-5):
        super().__init__()
        if not 0 <= momentum < 1:
            raise ValueError(f"RunningStandardize.momentum must lie in [0, 1), got {momentum}")
        self.momentum, self.eps = momentum, eps
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("var", torch.ones(dim))
        self.register_buffer("weight", torch.zeros(()))  # 1 - momentum^updates: the bias correction

    @torch.no_grad()
    def update(self, x: torch.Tensor, rows: torch.Tensor | None = None) -> None:
        """Fold the selected rows of x (B, D) into the running moments; no rows, no change.
        The corrected average is kept directly, mean and variance about it (no E[x^2] - E[x]^2,
        which cancels catastrophically in float32 under a large common component), in float32
        even under autocast; masked sums rather than indexing keep the step free of host syncs."""
        picked = torch.ones(len(x), dtype=torch.bool, device=x.device) if rows is None else rows.bool()
        x = torch.where(picked[:, None], x.detach().float(), 0.0)  # a non-finite unpicked row stays out
        count = picked.sum().clamp_min(1)
        batch_mean = x.sum(dim=0) / count  # sums, not matmuls: autocast would lower those to bf16
        batch_var = torch.where(picked[:, None], x - batch_mean, 0.0).pow(2).sum(dim=0) / count
        new = torch.where(picked.any(), 1 - self.momentum, 0.0)  # this batch's share, uncorrected
        weight = self.weight * (1 - new) + new
        share = new / weight.clamp_min(torch.finfo(weight.dtype).tiny)  # corrected: 1 on the first batch
        delta = batch_mean - self.mean
        self.var.mul_(1 - share).add_(share * batch_var + share * (1 - share) * delta.pow(2))
        self.mean.add_(share * delta)
        self.weight.copy_(weight)

    def forward(self, x: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        if self.training:
            self.update(x, rows)
        return (x - self.mean.to(x.dtype)) * torch.rsqrt(self.var + self.eps).to(x.dtype)
