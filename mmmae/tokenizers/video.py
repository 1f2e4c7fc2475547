"""Video tubelets: (B, C, T, H, W) -> one token per tubelet x patch x patch cube (Conv3d)."""

from collections.abc import Sequence

import gin
import torch
from torch import nn

from mmmae.tokenizers.patches import IMAGENET_MEAN, IMAGENET_STD, PixelTokenizer, token_grid
from mmmae.types import Tokens


@gin.configurable(module="mmmae")
class TubeletTokenizer(PixelTokenizer):
    """Conv3d tubelet embedding plus a positional table (`pos_embed`: joint | separable, fixed;
    learned | learned_separable at the reference grid `pos_grid`, see PixelTokenizer).

    Input pixels are in [0, 1]; the encoder sees them standardised with `mean`/`std`; targets
    are VideoMAE's per-token, per-channel normalised pixels (`norm_target=False`: raw pixels).
    target_tubelet: MAE-ST's prediction depth (t_pred_patch_size): each token's target is
    `target_tubelet` frames of the clip subsampled to T' * target_tubelet frames at
    linspace(0, T - 1).long() (MAE-ST pred_t_dim = T' * target_tubelet); None: the tubelet itself.
    """

    def __init__(
        self,
        dim: int = gin.REQUIRED,
        tubelet: int = 2,
        patch: int = 16,
        channels: int = 3,
        pos_embed: str = "joint",
        norm_target: bool | str = True,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        pos_grid: Sequence[int] | None = None,
        target_tubelet: int | None = None,
    ):
        kernel = (tubelet, patch, patch)
        super().__init__(nn.Conv3d(channels, dim, kernel, stride=kernel), kernel, pos_embed, norm_target, mean, std,
                         pos_grid)
        self.target_kernel = kernel if target_tubelet is None else (target_tubelet, patch, patch)
        self.target_dim = self.target_kernel[0] * patch * patch * channels

    def grid(self, video_shape: Sequence[int]) -> tuple[int, int, int]:
        """(..., T, H, W) -> (T', H', W'), naming the sizes that do not divide."""
        return token_grid("TubeletTokenizer", video_shape[-3:], self.kernel, "THW")

    def target_clip(self, video: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        """(B, C, T, H, W) -> the frames the targets are cut from: all of them, or with
        `target_tubelet` T' * target_tubelet frames at linspace(0, T - 1).long() (MAE-ST)."""
        if self.target_kernel == self.kernel:
            return video
        index = torch.linspace(0, video.shape[2] - 1, grid[0] * self.target_kernel[0]).long().to(video.device)
        return video.index_select(2, index)

    def figure_image(self, pixels: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int], tuple[int, ...]] | None:
        """The clip the targets are cut from, with the target kernel and the token grid."""
        grid = self.grid(pixels.shape)
        return self.target_clip(pixels, grid), self.target_kernel, grid

    def forward(self, video: torch.Tensor) -> Tokens:
        grid = self.grid(video.shape)
        embed = self.project(self.standardize(video)).flatten(2).transpose(1, 2)
        return self.tokens(embed, self.target_clip(video, grid), grid, self.target_kernel)
