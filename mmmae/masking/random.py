"""Random masking over all tokens (MAE, MAE-ST)."""

import gin

from mmmae.masking.base import check_ratio, keep_of_remainder, split_by_noise
from mmmae.masking.rng import MaskRNG
from mmmae.types import MaskPlan, Tokens


@gin.configurable(module="mmmae")
class RandomMasking:
    """Keep int(N * (1 - ratio)) tokens chosen uniformly per sample (MAE count); predict the rest."""

    def __init__(self, ratio: float = 0.9):
        self.ratio = check_ratio("RandomMasking", ratio)

    def __call__(self, tokens: Tokens, batch: dict, rng: MaskRNG) -> MaskPlan:
        num_tokens = tokens.num_tokens
        num_keep = keep_of_remainder("RandomMasking", self.ratio, num_tokens, units="tokens")
        keep, predict = split_by_noise(rng.rand(tokens.embed.shape[0], num_tokens), num_keep)
        return MaskPlan(keep=keep, predict=predict)
