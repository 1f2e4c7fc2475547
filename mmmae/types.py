"""The contracts of one step (docs/design.md, "Contracts"): what a tokenizer, a masker, a decoder
and an objective take and give, and what the model returns."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch
from einops import rearrange

from mmmae.masking.rng import MaskRNG


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


@dataclass
class ModalityOutput:
    """One modality after a step: what the objectives read."""

    tokens: Tokens
    plan: MaskPlan
    encoded: torch.Tensor  # (B, K, D) at plan.keep
    prediction: torch.Tensor | None  # (B, Q, P) at plan.predict; None when the modality is not decoded
    present: torch.Tensor  # (B,) bool
    mask: torch.Tensor | None = None  # (B, K) bool: encoded tokens that took part (not padding, absent or dropped)
    cls: torch.Tensor | None = None  # (B, D) the encoded class token (Modality.cls_token), else None
    full: torch.Tensor | None = None  # (B, N, D) every token encoded alone (an objective's full_view_modalities)
    full_mask: torch.Tensor | None = None  # (B, N) bool: the full view's tokens that took part
    prediction_target: torch.Tensor | None = None  # (B, Q, P) what `prediction` is scored against (Decoded.target)
    decoder_terms: dict[str, torch.Tensor] = field(default_factory=dict)  # {name: (B,)} (Decoded.terms)


@dataclass
class Decoded:
    """A decoder's answer for one modality when a bare prediction (B, Q, P) does not say it all.

    prediction: (B, Q, P) at plan.predict.
    target:     (B, Q, P) what the prediction is scored against instead of the tokens' target at
                plan.predict (a diffusion decoder that predicts the noise it added), or None.
    terms:      per-sample terms {name: (B,)} for objectives to weigh (DecoderTerm: a VAE's KL
                divergence, a quantiser's commitment loss).
    """

    prediction: torch.Tensor
    target: torch.Tensor | None = None
    terms: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class ModelOutput:
    """A step's weighted loss, its detached logs (every objective's, and 'loss') and each modality's output."""

    loss: torch.Tensor
    logs: dict[str, torch.Tensor]
    outputs: dict[str, ModalityOutput]


@runtime_checkable
class Tokenizer(Protocol):
    """A modality's batch entry -> Tokens; `dim` is the token width D, `target_dim` P."""

    dim: int
    target_dim: int

    def __call__(self, inputs) -> Tokens: ...


@runtime_checkable
class Target(Protocol):
    """A modality's reconstruction target from elsewhere than its tokenizer (Modality.target, e.g. a
    frozen teacher's tokens): its batch entry and its Tokens -> (B, N, P) on the tokens' grid, with
    no gradient; `dim` is P, the width its decoder predicts."""

    dim: int

    def __call__(self, inputs, tokens: Tokens) -> torch.Tensor: ...


@runtime_checkable
class EmbeddingTarget(Protocol):
    """One embedding per sample of a modality's batch entry (a teacher's pooled embedding,
    mmmae/targets/teacher_embedding.py): inputs -> (B, E), no gradient; `dim` is E."""

    dim: int

    def __call__(self, inputs) -> torch.Tensor: ...


@runtime_checkable
class Masker(Protocol):
    """(tokens, batch, rng) -> MaskPlan; its randomness comes only from rng (see MaskRNG)."""

    def __call__(self, tokens: Tokens, batch: dict, rng: MaskRNG) -> MaskPlan: ...


@runtime_checkable
class Decoder(Protocol):
    """One modality's decoder: encoded (B, K, D) at plan.keep, the token grid, the plan, and the encoded
    class token (B, D) when the modality has one -> prediction (B, Q, P) at plan.predict, or Decoded.
    A decoder with `takes_target = True` (a diffusion decoder, which noises the target) is also given
    target=(B, Q, P), the tokens' target at plan.predict."""

    def __call__(self, encoded: torch.Tensor, grid: tuple[int, ...], plan: MaskPlan,
                 cls: torch.Tensor | None = None) -> "torch.Tensor | Decoded": ...


@runtime_checkable
class ModelDecoder(Protocol):
    """A decoder of several modalities at once (MaskedAutoencoder.decoder): encoded {m: (B, K, D)},
    tokens, plans and presence {m: (B,)} -> predictions {m: (B, Q, P) or Decoded} for the modalities it
    decodes."""

    def __call__(self, encoded: dict[str, torch.Tensor], tokens: dict[str, Tokens], plans: dict[str, MaskPlan],
                 present: dict[str, torch.Tensor]) -> "dict[str, torch.Tensor | Decoded]": ...


@runtime_checkable
class Objective(Protocol):
    """(outputs {m: ModalityOutput}, batch) -> (loss (), logs {name: ()}); the model adds weight * loss,
    `weight` a number or a schedule of the optimizer step (weight(step), e.g. CosineRamp).

    full_view_modalities: the modalities it needs encoded whole and alone as well (ModalityOutput.full)."""

    weight: float | Callable[[int], float]
    full_view_modalities: Sequence[str]

    def __call__(self, outputs: dict[str, ModalityOutput], batch: dict
                 ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]: ...


@runtime_checkable
class PairEmbedding(Protocol):
    """An objective that embeds two modalities into one space (Contrastive): retrieval uses its embedding."""

    modalities: Sequence[str]

    def embed(self, modality: str, encoded: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
        """Encoded tokens (B, N, D) and validity (B, N) or None -> (B, E) unit vectors."""
        ...


class BindingProblem(ValueError):
    """A failure the config's bindings cause, raised where the config is not known (inside the model).

    bindings: (label, binding) pairs such as ("masker chosen in", "video/Modality.masker"): the
    trainer, which knows the parsed config, says where each was bound (mmmae.config.with_bindings)."""

    def __init__(self, message: str, bindings: Sequence[tuple[str, str]] = ()):
        super().__init__(message)
        self.bindings = tuple(bindings)


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
