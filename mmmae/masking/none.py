"""No masking: the encoder sees every token and nothing is predicted (SiamMAE's context view)."""

import gin
import torch

from mmmae.masking.rng import MaskRNG
from mmmae.types import MaskPlan, Tokens


@gin.configurable(module="mmmae")
class NoMasking:
    """keep = all N tokens (B, N); predict is empty (B, 0). Draws no randomness.

    For a modality that only gives context (the unmasked frame of SiamMAE / the global crop of
    CropMAE): give it no decoder and no reconstruction objective, as there is nothing to predict.
    """

    def __call__(self, tokens: Tokens, batch: dict, rng: MaskRNG) -> MaskPlan:
        batch_size, num_tokens = tokens.embed.shape[:2]
        keep = torch.arange(num_tokens, device=tokens.embed.device).repeat(batch_size, 1)
        return MaskPlan(keep=keep, predict=keep[:, :0])
