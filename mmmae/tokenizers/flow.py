"""Optical flow as tubelets: (B, 2, T, H, W) fields (dx, dy in pixels per frame) -> one token per
tubelet x patch x patch cube, the video tokenizer on fixed-normalised flow."""

import gin
import torch

from mmmae.tokenizers.video import TubeletTokenizer
from mmmae.types import Tokens


@gin.configurable(module="mmmae")
class FlowTokenizer(TubeletTokenizer):
    """A 2-channel `TubeletTokenizer` on flow normalised by a fixed scale: every value becomes
    flow / `scale`, clipped to [-`clip`, `clip`] (a few estimator outliers cannot dominate).

    The projection and positions are the tubelet tokenizer's (`pos_embed`, `pos_grid`); its
    standardisation is the identity (mean 0, std 1), and the target of a token is its normalised
    flow as it is, laid out (p0 p1 p2 c) like pixel targets: target_dim = 2 * tubelet * patch * patch.
    Input: a `flow` batch entry, forward flow from frame t to t+1 on frame t's grid (MovingDigits'
    ground truth, or `WithEstimatedFlow` of mmmae/data/flow_input.py).
    """

    def __init__(self, dim: int = gin.REQUIRED, tubelet: int = 2, patch: int = 16, scale: float = 4.0,
                 clip: float = 2.0, pos_embed: str = "joint", pos_grid: tuple[int, ...] | None = None):
        if not (scale > 0 and clip > 0):
            raise ValueError(f"FlowTokenizer needs scale > 0 and clip > 0, got scale={scale}, clip={clip}")
        super().__init__(dim, tubelet, patch, channels=2, pos_embed=pos_embed, norm_target=False, mean=(0.0, 0.0),
                         std=(1.0, 1.0), pos_grid=pos_grid)
        self.scale, self.clip = scale, clip

    def normalize(self, flow: torch.Tensor) -> torch.Tensor:
        """(B, 2, T, H, W) pixels per frame -> flow / scale clipped to [-clip, clip]."""
        if flow.ndim != 5 or flow.shape[1] != 2:
            raise ValueError(f"FlowTokenizer expects flow (B, 2, T, H, W), got {tuple(flow.shape)}")
        return (flow.float() / self.scale).clamp(-self.clip, self.clip)

    def figure_image(self, pixels: torch.Tensor) -> None:
        """No drawing: a flow field is not a clip of pixels in [0, 1]."""
        return None

    def forward(self, flow: torch.Tensor) -> Tokens:
        return super().forward(self.normalize(flow))
