"""Fixed sin-cos positional embeddings over a token lattice.

``joint``: one table over the flattened (t, h, w) index, sin and cos interleaved on the
channel axis (VideoMAE's `get_sinusoid_encoding_table`).
``separable``: a 2-D spatial table (half the channels for h, half for w, [sin | cos]) plus a
1-D temporal table, added (space and time factorised, as in MAE-ST but fixed).

Learned tables (`position_table`): ``learned``, one parameter (prod(grid), dim) (MAE, AudioMAE
and HF ViTMAE store their fixed tables as parameters; converters load them here), and
``learned_separable``, MAE-ST's spatial (H*W, dim) plus temporal (T, dim) parameters. Either
lives at a reference grid and is resampled to other grids (`resample_table`: linear in 1-D,
bicubic in 2-D as timm / MAE fine-tuning, trilinear in 3-D), so one model runs at other frame
counts, resolutions and audio lengths. A fixed table given a reference grid is built there and
resampled the same way, instead of re-indexing a flattened 1-D table (which does not generalise
geometrically).
"""

import functools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

VARIANTS = ("joint", "separable")
LEARNED = ("learned", "learned_separable")
MODES = {1: "linear", 2: "bicubic", 3: "trilinear"}


def sincos_1d(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """positions (N,) -> (N, dim) as [sin | cos] halves (MAE convention; a diffusion decoder's timesteps),
    float64 on the positions' device; dim must be even."""
    if dim % 2:
        raise ValueError(f"sin-cos embedding needs an even width, got {dim}")
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64, device=positions.device) / (dim / 2))
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


def resample_table(table: torch.Tensor, source: Sequence[int], target: Sequence[int]) -> torch.Tensor:
    """A table (prod(source), D) laid out over the `source` lattice -> (prod(target), D) over `target`.

    The same grid returns `table` itself. Same rank: linear / bicubic / trilinear interpolation
    (align_corners=False). A 2-D table on a 3-D (T, H, W) target is resampled over (H, W) and
    repeated for every frame (an image model applied frame by frame).
    """
    source, target = tuple(source), tuple(target)
    if source == target:
        return table
    if len(source) == 2 and len(target) == 3:
        return repeat(resample_table(table, source, target[1:]), "n d -> (t n) d", t=target[0])
    if len(source) != len(target) or len(source) not in MODES:
        raise ValueError(f"cannot resample a positional table from grid {source} to grid {target}")
    if table.shape[0] != math.prod(source):
        raise ValueError(f"positional table has {table.shape[0]} rows, grid {source} needs {math.prod(source)}")
    lattice = table.T.reshape(1, table.shape[1], *source)
    resampled = F.interpolate(lattice, size=target, mode=MODES[len(source)], align_corners=False)
    return rearrange(resampled, "1 d ... -> (...) d")


@functools.cache
def sincos_pos_embed(
    grid: tuple[int, ...], dim: int, variant: str = "joint", device: torch.device | None = None,
    reference: tuple[int, ...] | None = None,
) -> torch.Tensor:
    """Fixed float32 table (prod(grid), dim) for a (T', H', W') or (H', W') lattice; with a
    `reference` grid, the table built there and resampled to `grid` (see `resample_table`).

    Cached per (grid, dim, variant, device, reference): built once, never copied host to device again.
    """
    if variant not in VARIANTS:
        raise ValueError(f"positional embedding variant {variant!r} is not one of {VARIANTS}")
    if reference is None:
        table = _table(tuple(grid), dim, variant)
    else:
        table = resample_table(_table(tuple(reference), dim, variant), reference, grid)
    return table.to(device=device, dtype=torch.float32)


class FixedPositions(nn.Module):
    """A sin-cos table (no parameters): forward(grid, device) -> (prod(grid), dim)."""

    def __init__(self, variant: str, dim: int, reference: tuple[int, ...] | None = None):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"positional embedding variant {variant!r} is not one of {VARIANTS + LEARNED}")
        self.variant, self.dim, self.reference = variant, dim, reference

    def forward(self, grid: tuple[int, ...], device: torch.device | None = None) -> torch.Tensor:
        return sincos_pos_embed(tuple(grid), self.dim, self.variant, device, self.reference)


class LearnedPositions(nn.Module):
    """A learned table `table` (prod(reference), dim), resampled to other grids."""

    def __init__(self, dim: int, reference: tuple[int, ...]):
        super().__init__()
        self.reference = reference
        self.table = nn.Parameter(nn.init.trunc_normal_(torch.empty(math.prod(reference), dim), std=0.02))

    def forward(self, grid: tuple[int, ...], device: torch.device | None = None) -> torch.Tensor:
        return resample_table(self.table, self.reference, grid)


class SeparableLearnedPositions(nn.Module):
    """MAE-ST's learned tables at a reference (T, H, W): `spatial` (H*W, dim), tiled over time,
    plus `temporal` (T, dim), repeated over space; each resampled to other grids."""

    def __init__(self, dim: int, reference: tuple[int, int, int]):
        super().__init__()
        if len(reference) != 3:
            raise ValueError(f"separable learned positions need a (T, H, W) reference grid, got {reference}")
        self.reference = reference
        self.spatial = nn.Parameter(nn.init.trunc_normal_(torch.empty(reference[1] * reference[2], dim), std=0.02))
        self.temporal = nn.Parameter(nn.init.trunc_normal_(torch.empty(reference[0], dim), std=0.02))

    def forward(self, grid: tuple[int, ...], device: torch.device | None = None) -> torch.Tensor:
        if len(grid) != 3:
            raise ValueError(f"separable learned positions need a (T, H, W) token grid, got {tuple(grid)}")
        t, h, w = grid
        space = resample_table(self.spatial, self.reference[1:], (h, w))
        time = resample_table(self.temporal, self.reference[:1], (t,))
        return repeat(space, "n d -> (t n) d", t=t) + repeat(time, "t d -> (t n) d", n=h * w)


def position_table(variant: str, dim: int, reference: Sequence[int] | None = None, owner: str = "pos_embed"
                   ) -> nn.Module:
    """The module for `variant` (VARIANTS fixed, LEARNED parameters) at an optional reference grid;
    learned tables need one (`owner` names the binding in errors). forward(grid, device) -> (N, dim)."""
    reference = None if reference is None else tuple(int(n) for n in reference)
    if variant not in VARIANTS + LEARNED:
        raise ValueError(f"{owner} = {variant!r} is not one of {VARIANTS + LEARNED}")
    if variant in VARIANTS:
        return FixedPositions(variant, dim, reference)
    if reference is None:
        raise ValueError(f"{owner} = {variant!r} needs a reference token grid (its pos_grid binding)")
    return LearnedPositions(dim, reference) if variant == "learned" else SeparableLearnedPositions(dim, reference)
