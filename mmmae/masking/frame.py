"""Frame masking: hide whole time steps of a (T', H', W') grid."""

import gin

from mmmae.masking.base import check_ratio, keep_after_masking, lift, split_by_noise
from mmmae.masking.rng import MaskRNG
from mmmae.types import MaskPlan, Tokens


@gin.configurable(module="mmmae")
class FrameMasking:
    """Hide all H'W' tokens of int(ratio * T') randomly chosen time steps."""

    def __init__(self, ratio: float = 0.5):
        self.ratio = check_ratio("FrameMasking", ratio)

    def __call__(self, tokens: Tokens, batch: dict, rng: MaskRNG) -> MaskPlan:
        frames, height, width = tokens.grid
        num_keep = keep_after_masking("FrameMasking", self.ratio, frames)
        keep, predict = split_by_noise(rng.rand(tokens.embed.shape[0], frames), num_keep)
        return MaskPlan(keep=lift(keep, height * width), predict=lift(predict, height * width))
