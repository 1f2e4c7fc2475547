"""Fixed sin-cos positional embeddings over a token lattice.

``joint``: one table over the flattened (t, h, w) index, sin and cos interleaved on the
channel axis (VideoMAE's `get_sinusoid_encoding_table`).
``separable``: a 2-D spatial table (half the channels for h, half for w, [sin | cos]) plus a
1-D temporal table, added (space and time factorised, as in MAE-ST but fixed).
"""

import functools
import math

import torch
from einops import repeat

VARIANTS = ("joint", "separable")


def sincos_1d(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """positions (N,) -> (N, dim) as [sin | cos] halves (MAE convention); dim must be even."""
    if dim % 2:
        raise ValueError(f"sin-cos embedding needs an even width, got {dim}")
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2))
    angles = positions.to(torch.float64)[:, None] * omega[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def sincos_interleaved(num_positions: int, dim: int) -> torch.Tensor:
    """VideoMAE's 1-D table: (N, dim), channel j has angle pos / 10000^(2*(j//2)/dim)."""
    channels = torch.arange(dim, dtype=torch.float64)
    angles = torch.arange(num_positions, dtype=torch.float64)[:, None] / 10000 ** (2 * (channels // 2) / dim)
    return torch.where(channels.long() % 2 == 0, angles.sin(), angles.cos())


def sincos_2d(height: int, width: int, dim: int) -> torch.Tensor:
    """(H*W, dim) in (h w) order: first half of the channels encode h, second half w."""
    if dim % 4:
        raise ValueError(f"2-D sin-cos embedding needs a width divisible by 4, got {dim}")
    h = sincos_1d(torch.arange(height), dim // 2)
    w = sincos_1d(torch.arange(width), dim // 2)
    return torch.cat([repeat(h, "h d -> (h w) d", w=width), repeat(w, "w d -> (h w) d", h=height)], dim=1)


def _table(grid: tuple[int, ...], dim: int, variant: str) -> torch.Tensor:
    if variant == "joint":
        return sincos_interleaved(math.prod(grid), dim)
    if len(grid) == 2:
        return sincos_2d(*grid, dim)
    t, h, w = grid
    space = repeat(sincos_2d(h, w, dim), "n d -> (t n) d", t=t)
    time = repeat(sincos_1d(torch.arange(t), dim), "t d -> (t n) d", n=h * w)
    return space + time


@functools.cache
def sincos_pos_embed(
    grid: tuple[int, ...], dim: int, variant: str = "joint", device: torch.device | None = None
) -> torch.Tensor:
    """Fixed float32 table (prod(grid), dim) for a (T', H', W') or (H', W') lattice.

    Cached per (grid, dim, variant, device): built once, never copied host to device again.
    """
    if variant not in VARIANTS:
        raise ValueError(f"positional embedding variant {variant!r} is not one of {VARIANTS}")
    return _table(tuple(grid), dim, variant).to(device=device, dtype=torch.float32)
