"""Single frames: 2-D patches of every frame (B, C, T, H, W), or of an image (B, C, H, W)."""

from collections.abc import Sequence

import gin
import torch
from einops import rearrange
from torch import nn

from mmmae.tokenizers.patches import IMAGENET_MEAN, IMAGENET_STD, PixelTokenizer, token_grid
from mmmae.types import Tokens


@gin.configurable(module="mmmae")
class FrameTokenizer(PixelTokenizer):
    """Conv2d patch embedding per frame; grid (T, H', W') for clips, (H', W') for images.

    Targets as TubeletTokenizer with a tubelet of one frame. Positions as PixelTokenizer; an
    image model's 2-D reference `pos_grid` (H', W') applied to a clip repeats over the frames.
    """

    def __init__(
        self,
        dim: int = gin.REQUIRED,
        patch: int = 16,
        channels: int = 3,
        pos_embed: str = "joint",
        norm_target: bool | str = True,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        pos_grid: Sequence[int] | None = None,
    ):
        proj = nn.Conv2d(channels, dim, kernel_size=patch, stride=patch)
        super().__init__(proj, (1, patch, patch), pos_embed, norm_target, mean, std, pos_grid)

    def grid(self, shape: Sequence[int]) -> tuple[int, ...]:
        """(B, C, T, H, W) -> (T, H', W'); (B, C, H, W) -> (H', W')."""
        if len(shape) == 5:
            return token_grid("FrameTokenizer", shape[-3:], self.kernel, "THW")
        return token_grid("FrameTokenizer", shape[-2:], self.kernel[1:], "HW")

    def forward(self, pixels: torch.Tensor) -> Tokens:
        grid = self.grid(pixels.shape)
        frames = rearrange(pixels, "b c t h w -> (b t) c h w") if pixels.ndim == 5 else pixels
        embed = self.project(self.standardize(frames))
        embed = rearrange(embed, "(b t) d h w -> b (t h w) d", b=pixels.shape[0])
        return self.tokens(embed, pixels, grid, self.kernel if pixels.ndim == 5 else self.kernel[1:])
