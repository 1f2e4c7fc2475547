"""Video tubelets: (B, C, T, H, W) -> one token per tubelet x patch x patch cube (Conv3d)."""

import math
from collections.abc import Sequence

import gin
import torch
from torch import nn

from mmmae.nn.pos_embed import sincos_pos_embed
from mmmae.tokenizers.patches import IMAGENET_MEAN, IMAGENET_STD, normalize_input, patch_targets, token_grid
from mmmae.types import Tokens


@gin.configurable(module="mmmae")
class TubeletTokenizer(nn.Module):
    """Conv3d tubelet embedding plus a fixed sin-cos table (`pos_embed`: joint | separable).

    Input pixels are in [0, 1]; the encoder sees them standardised with `mean`/`std`; targets
    are VideoMAE's per-token, per-channel normalised pixels (`norm_target=False`: raw pixels).
    """

    def __init__(
        self,
        dim: int = gin.REQUIRED,
        tubelet: int = 2,
        patch: int = 16,
        channels: int = 3,
        pos_embed: str = "joint",
        norm_target: bool = True,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ):
        super().__init__()
        self.kernel = (tubelet, patch, patch)
        self.proj = nn.Conv3d(channels, dim, kernel_size=self.kernel, stride=self.kernel)
        self.dim = dim
        self.target_dim = math.prod(self.kernel) * channels
        self.pos_embed = pos_embed
        self.norm_target = norm_target
        self.mean, self.std = tuple(mean), tuple(std)

    def grid(self, video_shape: Sequence[int]) -> tuple[int, int, int]:
        """(..., T, H, W) -> (T', H', W'), naming the sizes that do not divide."""
        return token_grid("TubeletTokenizer", video_shape[-3:], self.kernel, "THW")

    def forward(self, video: torch.Tensor) -> Tokens:
        grid = self.grid(video.shape)
        embed = self.proj(normalize_input(video, self.mean, self.std)).flatten(2).transpose(1, 2)
        embed = embed + sincos_pos_embed(grid, embed.shape[-1], self.pos_embed, embed.device).to(embed.dtype)
        return Tokens(embed=embed, target=patch_targets(video, self.kernel, self.norm_target), grid=grid)
