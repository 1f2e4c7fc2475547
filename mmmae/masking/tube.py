"""Tube masking (VideoMAE): one spatial mask per sample, the same in every frame."""

import gin

from mmmae.masking.base import check_ratio, keep_after_masking, split_by_noise, tile_over_time
from mmmae.masking.rng import MaskRNG
from mmmae.types import MaskPlan, Tokens


@gin.configurable(module="mmmae")
class TubeMasking:
    """Hide int(ratio * H'W') spatial positions in all T' frames of a (T', H', W') grid."""

    def __init__(self, ratio: float = 0.9):
        self.ratio = check_ratio("TubeMasking", ratio)

    def __call__(self, tokens: Tokens, batch: dict, rng: MaskRNG) -> MaskPlan:
        frames, height, width = tokens.grid
        space = height * width
        num_keep = keep_after_masking("TubeMasking", self.ratio, space)
        keep, predict = split_by_noise(rng.rand(tokens.embed.shape[0], space), num_keep)
        return MaskPlan(keep=tile_over_time(keep, frames, space), predict=tile_over_time(predict, frames, space))
