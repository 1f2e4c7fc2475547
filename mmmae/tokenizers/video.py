"""Video tubelets: (B, C, T, H, W) -> one token per tubelet x patch x patch cube (Conv3d)."""

from collections.abc import Sequence

import gin
import torch
from torch import nn

from mmmae.tokenizers.patches import IMAGENET_MEAN, IMAGENET_STD, PixelTokenizer, token_grid
from mmmae.types import Tokens


@gin.configurable(module="mmmae")
class TubeletTokenizer(PixelTokenizer):
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
        kernel = (tubelet, patch, patch)
        super().__init__(nn.Conv3d(channels, dim, kernel, stride=kernel), kernel, pos_embed, norm_target, mean, std)

    def grid(self, video_shape: Sequence[int]) -> tuple[int, int, int]:
        """(..., T, H, W) -> (T', H', W'), naming the sizes that do not divide."""
        return token_grid("TubeletTokenizer", video_shape[-3:], self.kernel, "THW")

    def forward(self, video: torch.Tensor) -> Tokens:
        grid = self.grid(video.shape)
        embed = self.proj(self.standardize(video)).flatten(2).transpose(1, 2)
        return self.tokens(embed, video, grid, self.kernel)
