"""A mask given with the batch (HF's bool_masked_pos): parity checks, fixed evaluation masks, external maskers."""

import gin
import torch

from mmmae.masking.rng import MaskRNG
from mmmae.types import MaskPlan, Tokens


@gin.configurable(module="mmmae")
class GivenMasking:
    """Read batch[key], a (B, N) bool mask (True = hidden, as HF VideoMAE's `bool_masked_pos`),
    with the same number hidden in every sample -> keep the False tokens, predict the True ones."""

    def __init__(self, key: str = "mask"):
        self.key = key

    def __call__(self, tokens: Tokens, batch: dict, rng: MaskRNG) -> MaskPlan:
        if self.key not in batch:
            raise KeyError(f"GivenMasking reads batch[{self.key!r}], which the batch lacks (keys: {sorted(batch)})")
        hidden = torch.as_tensor(batch[self.key], device=tokens.embed.device).bool()
        expected = (tokens.embed.shape[0], tokens.num_tokens)
        if tuple(hidden.shape) != expected:
            raise ValueError(f"GivenMasking: batch[{self.key!r}] has shape {tuple(hidden.shape)}, expected "
                             f"(batch, tokens) = {expected}")
        return hidden_plan(hidden, f"GivenMasking: batch[{self.key!r}]")


def hidden_plan(hidden: torch.Tensor, source: str = "the mask") -> MaskPlan:
    """(B, N) bool, True = predict, the same count in every sample -> keep / predict, each sorted;
    a ValueError naming `source` when the samples hide different counts."""
    counts = hidden.sum(dim=1)
    if not (counts == counts[0]).all():
        raise ValueError(f"{source} hides {counts.tolist()} tokens per sample: every sample must hide the same "
                         f"number of tokens, got {counts.tolist()}")
    order = torch.sort(hidden.to(torch.int8), dim=1, stable=True).indices  # visible first, each set ascending
    num_keep = hidden.shape[1] - int(counts[0])
    return MaskPlan(keep=order[:, :num_keep], predict=order[:, num_keep:])
