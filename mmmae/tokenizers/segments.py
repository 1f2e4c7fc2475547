"""Segment embeddings (LV-MAE): a long video's sequence of precomputed segment embeddings -> tokens."""

import gin
import torch
from torch import nn

from mmmae.nn.pos_embed import sincos_pos_embed
from mmmae.types import Tokens


@gin.configurable(module="mmmae")
class SegmentEmbeddingTokenizer(nn.Module):
    """Segment embeddings (B, L, input_dim), zero rows on padding -> Tokens(embed (B, L, dim) = a
    linear projection plus 1-D sin-cos positions, target = the input embeddings (B, L, input_dim),
    grid (L,), valid (B, L) = the rows that are not all zero).

    Padding is a zero row: the segment datasets (mmmae/eval/segment_datasets.py) pad so, and an
    L2-normalised embedding is never zero. `target_dim` is input_dim.
    """

    def __init__(self, dim: int = gin.REQUIRED, input_dim: int = gin.REQUIRED):
        super().__init__()
        self.dim, self.target_dim = dim, input_dim
        self.proj = nn.Linear(input_dim, dim)

    def forward(self, segments: torch.Tensor) -> Tokens:
        if segments.ndim != 3 or segments.shape[-1] != self.target_dim or not segments.is_floating_point():
            raise ValueError(f"SegmentEmbeddingTokenizer expects float segment embeddings (B, L, {self.target_dim}) "
                             f"(SegmentEmbeddingTokenizer.input_dim), got {tuple(segments.shape)} {segments.dtype}")
        grid = (segments.shape[1],)
        embed = self.proj(segments.to(self.proj.weight.dtype))  # FSDP's bf16 parameters; target fp32
        embed = embed + sincos_pos_embed(grid, self.dim, "joint", embed.device).to(embed.dtype)
        return Tokens(embed=embed, target=segments, grid=grid, valid=segments.ne(0).any(dim=-1))
