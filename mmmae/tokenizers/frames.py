"""Single frames: 2-D patches of every frame (B, C, T, H, W), or of an image (B, C, H, W)."""

from collections.abc import Sequence

import gin
import torch
from einops import rearrange
from torch import nn

from mmmae.nn.pos_embed import sincos_pos_embed
from mmmae.tokenizers.patches import IMAGENET_MEAN, IMAGENET_STD, normalize_input, patch_targets, token_grid
from mmmae.types import Tokens


@gin.configurable(module="mmmae")
class FrameTokenizer(nn.Module):
    """Conv2d patch embedding per frame; grid (T, H', W') for clips, (H', W') for images.

    Targets as TubeletTokenizer with a tubelet of one frame.
    """

    def __init__(
        self,
        dim: int = gin.REQUIRED,
        patch: int = 16,
        channels: int = 3,
        pos_embed: str = "joint",
        norm_target: bool = True,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ):
        super().__init__()
        self.kernel = (1, patch, patch)
        self.proj = nn.Conv2d(channels, dim, kernel_size=patch, stride=patch)
        self.dim = dim
        self.target_dim = patch * patch * channels
        self.pos_embed = pos_embed
        self.norm_target = norm_target
        self.mean, self.std = tuple(mean), tuple(std)

    def grid(self, shape: Sequence[int]) -> tuple[int, ...]:
        """(B, C, T, H, W) -> (T, H', W'); (B, C, H, W) -> (H', W')."""
        if len(shape) == 5:
            return token_grid("FrameTokenizer", shape[-3:], self.kernel, "THW")
        return token_grid("FrameTokenizer", shape[-2:], self.kernel[1:], "HW")

    def forward(self, pixels: torch.Tensor) -> Tokens:
        grid = self.grid(pixels.shape)
        frames = rearrange(pixels, "b c t h w -> (b t) c h w") if pixels.ndim == 5 else pixels
        embed = self.proj(normalize_input(frames, self.mean, self.std))
        embed = rearrange(embed, "(b t) d h w -> b (t h w) d", b=pixels.shape[0])
        embed = embed + sincos_pos_embed(grid, embed.shape[-1], self.pos_embed, embed.device).to(embed.dtype)
        kernel = self.kernel if pixels.ndim == 5 else self.kernel[1:]
        return Tokens(embed=embed, target=patch_targets(pixels, kernel, self.norm_target), grid=grid)
