"""Shared pieces of the pixel tokenizers: lattice checks, targets, and the base
class that owns the projection, input standardisation and positions.

Reconstruction targets follow VideoMAE: pixels in [0, 1] are cut into patches laid out
(t h w)(p0 p1 p2 c), channels innermost; with `normalize` each token is standardised per
channel over its p0*p1*p2 pixels, (x - mean) / (unbiased std + 1e-6). MAE / MAE-ST instead
normalise jointly over all values of a patch; the two are not interchangeable, so a
tokenizer's `norm_target` also takes MAE's: 'mae' (norm_pix_loss: the standardised pixels of a
patch, (x - mean) / sqrt(unbiased var + 1e-6) over all its values) and 'standardized' (MAE
without norm_pix_loss: the standardised pixels as they are).
"""

import math
from collections.abc import Sequence

import torch
from einops import rearrange
from torch import nn

from mmmae.nn.pos_embed import position_table
from mmmae.types import Tokens

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def token_grid(name: str, sizes: Sequence[int], kernel: Sequence[int], axes: str) -> tuple[int, ...]:
    """sizes // kernel per axis; a ValueError naming the sizes when they do not divide."""
    bad = [f"{a}={s} is not a multiple of {k}" for a, s, k in zip(axes, sizes, kernel) if s % k]
    if bad:
        shape = "x".join(map(str, sizes))
        cut = "x".join(map(str, kernel))
        raise ValueError(f"{name}: input {axes} {shape} does not divide into patches {cut}: {'; '.join(bad)}")
    return tuple(s // k for s, k in zip(sizes, kernel))


TARGET_NORMS = (True, False, "mae", "standardized")
MAE_TARGETS = ("mae", "standardized")


def patch_targets(pixels: torch.Tensor, kernel: Sequence[int], normalize: bool | str = True) -> torch.Tensor:
    """Pixels (B, C, T, H, W) with kernel (p0, p, p), or (B, C, H, W) with (p, p) -> (B, N, P).

    P = prod(kernel) * C, laid out (p0 p1 p2 c). See the module docstring for `normalize`
    (True: per channel; 'mae': jointly over the patch; False / 'standardized': none).
    """
    axes = dict(zip(("p0", "p1", "p2")[-len(kernel):], kernel))
    grid, tokens = ("(t p0) (h p1) (w p2)", "(t h w)") if pixels.ndim == 5 else ("(h p1) (w p2)", "(h w)")
    # Cut with channels before pixels, so the per-channel statistics reduce contiguous rows.
    patches = rearrange(pixels, f"b c {grid} -> b {tokens} c ({' '.join(axes)})", **axes)  # (B, N, C, p)
    if normalize == "mae":
        var, mean = torch.var_mean(patches, dim=(-2, -1), keepdim=True, unbiased=True)
        patches = (patches - mean).div_((var + 1e-6).sqrt_())
    elif normalize is True:
        std, mean = torch.std_mean(patches, dim=-1, keepdim=True, unbiased=True)
        patches = (patches - mean).div_(std + 1e-6)
    return rearrange(patches, "b n c p -> b n (p c)")


def patch_pixels(predicted: torch.Tensor, truth: torch.Tensor, normalize: bool | str = True) -> torch.Tensor:
    """The inverse of `patch_targets` for one sample: predictions (Q, p, C) of the targets of the
    patches `truth` (Q, p, C) -> values in truth's space, normalised ones mapped back with truth's
    own statistics (VideoMAE's visualisation); False / 'standardized' targets come back as they are."""
    if normalize == "mae":
        return predicted * (truth.var(dim=(1, 2), keepdim=True) + 1e-6).sqrt() + truth.mean(dim=(1, 2), keepdim=True)
    if normalize is True:
        return predicted * (truth.std(dim=1, keepdim=True) + 1e-6) + truth.mean(dim=1, keepdim=True)
    return predicted


class PixelTokenizer(nn.Module):
    """What the pixel tokenizers share: a patch projection `proj`, its `kernel` (p0, p, p),
    positions and the targets above. Subclasses define `grid` and `forward`.

    pos_embed: a fixed sin-cos variant ('joint', 'separable') or a learned one ('learned',
    'learned_separable'); pos_grid: the reference token grid where the table lives (required for
    learned tables), resampled to each input's grid (mmmae.nn.pos_embed). Stored as `positions`.
    norm_target: one of TARGET_NORMS (module docstring); the MAE ones cut the standardised pixels.
    """

    def __init__(self, proj: nn.Conv2d | nn.Conv3d, kernel: tuple[int, int, int], pos_embed: str,
                 norm_target: bool | str, mean: Sequence[float], std: Sequence[float],
                 pos_grid: Sequence[int] | None = None):
        super().__init__()
        if norm_target not in TARGET_NORMS:
            raise ValueError(f"{type(self).__name__}.norm_target = {norm_target!r} is not one of {TARGET_NORMS}")
        self.proj = proj
        self.kernel = kernel
        self.dim = proj.out_channels
        self.target_dim = math.prod(kernel) * proj.in_channels
        self.pos_embed = pos_embed
        self.positions = position_table(pos_embed, self.dim, pos_grid, owner=f"{type(self).__name__}.pos_embed")
        self.norm_target = norm_target
        self.register_buffer("mean", torch.tensor(mean), persistent=False)
        self.register_buffer("std", torch.tensor(std), persistent=False)

    def standardize(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, C, ...) in [0, 1] -> standardised per channel with the tokenizer's mean and std."""
        shape = (-1,) + (1,) * (pixels.ndim - 2)
        return (pixels - self.mean.view(shape)) / self.std.view(shape)

    def project(self, standardized: torch.Tensor) -> torch.Tensor:
        """`proj` of standardised pixels, cast to its weight's dtype (bf16 parameters under FSDP's
        bf16, which leaves the batch in fp32: the targets are cut from the uncast pixels)."""
        return self.proj(standardized.to(self.proj.weight.dtype))

    def tokens(self, embed: torch.Tensor, pixels: torch.Tensor, grid: tuple[int, ...], kernel: Sequence[int]) -> Tokens:
        """Patch embeddings (B, N, D) + positions, and the targets of `pixels` cut by `kernel`."""
        embed = embed + self.positions(grid, embed.device).to(embed.dtype)
        target = patch_targets(self.target_source(pixels), kernel, self.norm_target)
        return Tokens(embed=embed, target=target, grid=grid)

    def target_source(self, pixels: torch.Tensor) -> torch.Tensor:
        """What the targets are cut from: the pixels, standardised for MAE's target norms."""
        return self.standardize(pixels) if self.norm_target in MAE_TARGETS else pixels

    def figure_pixels(self, predicted: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
        """Predictions (Q, p, C) of the targets of figure patches `truth` (Q, p, C), pixels in
        [0, 1] -> pixels; MAE's targets are undone in the standardised space they were cut from."""
        if self.norm_target not in MAE_TARGETS:
            return patch_pixels(predicted, truth, self.norm_target)
        mean, std = self.mean.to(truth), self.std.to(truth)  # (C,): channels are innermost
        return patch_pixels(predicted, (truth - mean) / std, self.norm_target) * std + mean

    def figure_image(self, pixels: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int], tuple[int, ...]] | None:
        """What a reconstruction figure shows: clips (B, C, T, H, W) in [0, 1] as they are, with
        the kernel and grid their tokens use; None for inputs that are not clips."""
        if pixels.ndim != 5:
            return None
        return pixels, self.kernel, self.grid(pixels.shape)
