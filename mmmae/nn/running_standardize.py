"""Standardise features with running statistics that training and evaluation share."""

import torch
from torch import nn


class RunningStandardize(nn.Module):
    """(B, D) -> (B, D): (x - mean) / sqrt(var + eps) per feature, with a bias-corrected
    exponential moving mean and variance (Adam's correction, so the first batch is not shrunk
    towards the zero start).

    In training each call first folds the rows selected by `rows` (B,) bool (all if None) into
    the statistics, without gradient; in evaluation the statistics stay fixed. Unlike
    BatchNorm the output never depends on the rest of the batch, so one query at a time, absent
    samples and per-process batches all get the same transform. The statistics are persistent
    buffers: checkpoints and exported weights carry them. Under DistributedDataParallel, which
    broadcasts buffers before every forward, all processes use rank 0's statistics.
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
        which cancels catastrophically in float32 under a large common component); weighted
        sums rather than indexing keep the step free of host syncs."""
        x = x.detach().float()
        picked = torch.ones(len(x), device=x.device) if rows is None else rows.float()
        count = picked.sum().clamp_min(1)
        batch_mean = picked @ x / count
        batch_var = picked @ (x - batch_mean).pow(2) / count
        new = torch.where(picked.sum() > 0, 1 - self.momentum, 0.0)  # this batch's share, uncorrected
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
