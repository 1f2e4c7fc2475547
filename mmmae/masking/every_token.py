"""Predict every token: any masker's visible set, with the decoder predicting all tokens (VideoPrism stage 2)."""

from collections.abc import Callable

import gin
import torch

from mmmae.masking.rng import MaskRNG
from mmmae.types import MaskPlan, Tokens


@gin.configurable(module="mmmae")
class PredictEveryToken:
    """keep: the wrapped `masker`'s (B, K); predict: all N tokens (B, N), visible ones included, as
    VideoPrism's student predicts its teacher's embedding of every token. loss_weight: the wrapped
    plan's is dropped; every token counts once. Draws only what the wrapped masker draws."""

    def __init__(self, masker: Callable = gin.REQUIRED):
        self.masker = masker

    def __call__(self, tokens: Tokens, batch: dict, rng: MaskRNG) -> MaskPlan:
        plan = self.masker(tokens, batch, rng)
        batch_size, num_tokens = tokens.embed.shape[:2]
        every = torch.arange(num_tokens, device=plan.keep.device).repeat(batch_size, 1)
        return MaskPlan(keep=plan.keep, predict=every, aux=plan.aux)
