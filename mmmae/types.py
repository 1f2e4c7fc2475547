"""The two contracts between a tokenizer, a masker and a decoder (see docs/design.md)."""

from dataclasses import dataclass, field

import torch
from einops import rearrange


@dataclass
class Tokens:
    """One modality turned into tokens.

    embed:  (B, N, D) patch embeddings with positional (and modality) embedding added.
    target: (B, N, P) reconstruction target per token; (B, N) int64 ids for text.
    grid:   the token lattice, e.g. (T', H', W'); prod(grid) == N. The decoder builds its
            own positional table from it at its own width.
    valid:  (B, N) bool, False on padding, or None when nothing is padded.
    """

    embed: torch.Tensor
    target: torch.Tensor | None
    grid: tuple[int, ...]
    valid: torch.Tensor | None = None

    @property
    def num_tokens(self) -> int:
        return self.embed.shape[1]


@dataclass
class MaskPlan:
    """What the encoder sees and what the decoder predicts.

    keep:        (B, K) sorted token indices the encoder sees.
    predict:     (B, Q) sorted token indices the decoder predicts.
    loss_weight: (B, Q) per predicted token, or None for uniform weight.
    aux:         masker extras (log-probabilities, scores, ...).
    """

    keep: torch.Tensor
    predict: torch.Tensor
    loss_weight: torch.Tensor | None = None
    aux: dict[str, torch.Tensor] = field(default_factory=dict)


def gather_tokens(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Select tokens per sample: x (B, N, ...), index (B, K) in [0, N) -> (B, K, ...).

    Whole rows through index_select on (B*N, ...), whose backward is an index_add: several times
    faster on CPU than torch.gather with an index expanded over D (element by element). An
    index outside [0, N) is not caught (it reads a neighbouring sample's token): maskers
    return indices of their own tokens."""
    rows = index.long() + torch.arange(x.shape[0], device=index.device)[:, None] * x.shape[1]
    picked = rearrange(x, "b n ... -> (b n) ...").index_select(0, rearrange(rows, "b k -> (b k)"))
    return rearrange(picked, "(b k) ... -> b k ...", b=x.shape[0])


def presence(batch: dict, modality: str, like: torch.Tensor) -> torch.Tensor:
    """(B,) bool: which samples have `modality` (batch[f"{modality}_present"]; all when absent)."""
    key = f"{modality}_present"
    if key in batch:
        return batch[key].to(device=like.device, dtype=torch.bool)
    return torch.ones(like.shape[0], dtype=torch.bool, device=like.device)


def mean_tokens(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over tokens: x (B, N, D), mask (B, N) bool or None (all) -> (B, D)."""
    if mask is None:
        return x.mean(dim=1)
    weight = mask.to(x.dtype)[..., None]
    return (x * weight).sum(dim=1) / weight.sum(dim=1).clamp_min(1.0)
