"""Projection heads that map pooled encoder features into an embedding space."""

import gin
import torch
from torch import nn

HEAD_KINDS = ("linear", "mlp")


@gin.configurable(module="mmmae")
class ProjectionHead(nn.Module):
    """(..., in_dim) -> (..., out_dim).

    kind='linear': one Linear (CLIP-style).
    kind='mlp':    Linear(in_dim, hidden) - GELU - Linear(hidden, out_dim), hidden defaulting to
                   in_dim. No BatchNorm (ViC-MAE's projector has it): batch statistics would
                   differ per process and per count of present samples, and a head applied to
                   one retrieval query at a time would behave differently from training.
                   ViC-MAE's BatchNorm projector, for a training loss only, is NTXent's
                   (objectives/nt_xent.py: statistics over the present samples of all processes).
    """

    def __init__(self, in_dim: int, out_dim: int, kind: str = "linear", hidden: int | None = None):
        super().__init__()
        if kind not in HEAD_KINDS:
            raise ValueError(f"ProjectionHead.kind must be one of {HEAD_KINDS}, got {kind!r}")
        if kind == "linear" and hidden is not None:
            raise ValueError("ProjectionHead.hidden is only used with kind='mlp'")
        self.kind = kind
        if kind == "linear":
            self.layers = nn.Sequential(nn.Linear(in_dim, out_dim))
        else:
            hidden = hidden or in_dim
            self.layers = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
