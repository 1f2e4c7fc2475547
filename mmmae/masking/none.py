"""No masking: the encoder sees every token and nothing is predicted (SiamMAE's context view)."""

import gin
import torch

from mmmae.masking.rng import MaskRNG
from mmmae.types import MaskPlan, Tokens


@gin.configurable(module="mmmae")
class NoMasking:
    """keep = all N tokens (B, N); predict is empty (B, 0). Draws no randomness.

    What a Modality without a masker gets: a modality that only gives context (the unmasked frame
    of SiamMAE / the global crop of CropMAE) or is only contrasted. Such a modality builds no
    decoder, as there is nothing to predict; give it no reconstruction objective.
    """

    def __call__(self, tokens: Tokens, batch: dict, rng: MaskRNG) -> MaskPlan:
        batch_size, num_tokens = tokens.embed.shape[:2]
        keep = torch.arange(num_tokens, device=tokens.embed.device).repeat(batch_size, 1)
        return MaskPlan(keep=keep, predict=keep[:, :0])
