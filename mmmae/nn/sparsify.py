"""Token sparsification (SMAUG): drop the visible tokens that receive the least attention, mid-encoder."""

from collections.abc import Sequence

import gin
import torch
from einops import rearrange

from mmmae.nn.blocks import Block


def attention_received(block: Block, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """How much attention each token would receive in `block`: x (B, L, D), mask (B, L) bool
    (True = takes part) -> (B, L), the attention probability onto each key, averaged over the
    heads and the queries that take part; 0 where the mask is False."""
    q, k, _ = rearrange(block.attn.qkv(block.norm1(x)), "b l (three h d) -> three b h l d", three=3,
                        h=block.attn.heads)
    logits = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5  # (B, h, L, L)
    probs = logits.float().masked_fill(~mask[:, None, None, :], float("-inf")).softmax(dim=-1).nan_to_num(0.0)
    queries = mask[:, None, :, None].float()
    return (probs * queries).sum(dim=(1, 2)) / (queries.sum(dim=(1, 2)) * block.attn.heads).clamp_min(1.0)


@gin.configurable(module="mmmae")
class TokenSparsification:
    """SMAUG's sparsification (Lin et al., ICCV 2023): after encoder block `after_layer` (1 = after
    the first shared block), keep int(keep * n) of the n visible tokens of each listed modality,
    those that receive the most attention in the next block, within the context that block
    attends over (the sample's other modalities too under joint fusion). Training only: an
    eval-mode encoder keeps every token. Dropped tokens leave the encoder's output mask.
    """

    def __init__(self, after_layer: int = gin.REQUIRED, keep: float = 0.5, modalities: Sequence[str] = ("video",)):
        if not 0.0 < keep < 1.0:
            raise ValueError(f"TokenSparsification.keep = {keep}: a share strictly between 0 and 1")
        if after_layer < 1:
            raise ValueError(f"TokenSparsification.after_layer = {after_layer}: must be at least 1")
        self.after_layer = after_layer
        self.keep = keep
        self.modalities = tuple(modalities)

    def select(self, block: Block, parts: dict[str, torch.Tensor], masks: dict[str, torch.Tensor],
               joint: bool) -> dict[str, torch.Tensor]:
        """parts {m: (B, L_m, D)} after block `after_layer`, masks {m: (B, L_m) bool} -> the masks
        with the least-attended tokens of the listed modalities switched off."""
        scores = {}
        if joint:
            received = attention_received(block, torch.cat(list(parts.values()), dim=1),
                                          torch.cat(list(masks.values()), dim=1))
            scores = dict(zip(parts, received.split([p.shape[1] for p in parts.values()], dim=1)))
        masks = dict(masks)
        for m in self.modalities:
            score = scores[m] if joint else attention_received(block, parts[m], masks[m])
            count = (masks[m].sum(dim=1) * self.keep).long().clamp_min(1)  # (B,)
            rank = score.masked_fill(~masks[m], float("-inf")).argsort(dim=1, descending=True).argsort(dim=1)
            masks[m] = masks[m] & (rank < count[:, None])
        return masks
