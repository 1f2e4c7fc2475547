"""The composed masked model: modalities -> shared encoder -> decoders -> objectives."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import gin
import torch
from torch import nn

from mmmae.config import binding_location
from mmmae.masking.rng import MaskRNG
from mmmae.nn.blocks import init_weights
from mmmae.types import MaskPlan, Tokens, gather_tokens, mean_tokens, presence


@gin.configurable(module="mmmae")
class Modality(nn.Module):
    """One input stream: the batch key `name`, its tokenizer, its masker and its decoder.

    `decoder` is a factory (gin: `@video/MaskTokenDecoder`, no parentheses) called with the
    tokenizer's width and target size, or None when the modality is only encoded or a
    model-level decoder (`MaskedAutoencoder.decoder`) decodes it. A learned modality
    embedding is added to every token.
    """

    def __init__(self, name: str, tokenizer: nn.Module, masker: Callable, decoder: Callable | None = None):
        super().__init__()
        self.name = name
        self.tokenizer = tokenizer
        self.masker = masker
        self.decoder = decoder(in_dim=tokenizer.dim, out_dim=tokenizer.target_dim) if decoder else None
        self.embedding = nn.Parameter(nn.init.trunc_normal_(torch.empty(1, 1, tokenizer.dim), std=0.02))

    def mask(self, tokens: Tokens, batch: dict, rng: MaskRNG) -> MaskPlan:
        """The masker's plan; a masker that cannot use the batch (a missing side channel, a
        ratio that leaves nothing visible) names the modality and the gin line that chose it."""
        try:
            return self.masker(tokens, batch, rng)
        except (KeyError, ValueError) as error:
            message = error.args[0] if error.args else repr(error)
            where = binding_location(rf"({self.name}/)?Modality\.masker\s*=")
            chosen = f" (masker chosen in {where})" if where else ""
            raise ValueError(f"modality {self.name!r}: {message}{chosen}") from error

    def tokenize(self, inputs) -> Tokens:
        """Tokens of this modality's batch entry; a bad input names the modality."""
        try:
            tokens = self.tokenizer(inputs)
        except ValueError as error:
            raise ValueError(f"modality {self.name!r}: {error}") from error
        tokens.embed = tokens.embed + self.embedding.to(tokens.embed.dtype)
        return tokens


@dataclass
class ModalityOutput:
    tokens: Tokens
    plan: MaskPlan
    encoded: torch.Tensor  # (B, K, D) at plan.keep
    prediction: torch.Tensor | None  # (B, Q, P) at plan.predict
    present: torch.Tensor  # (B,) bool
    mask: torch.Tensor | None = None  # (B, K) bool: encoded tokens that took part (not padding, absent or dropped)


@dataclass
class ModelOutput:
    loss: torch.Tensor
    logs: dict[str, torch.Tensor]
    outputs: dict[str, ModalityOutput]


@gin.configurable(module="mmmae")
class MaskedAutoencoder(nn.Module):
    """Tokenize and mask every modality, encode the visible tokens together, decode, sum the objectives.

    encoder: factory called with the modality names (gin `@Encoder`). decoder: None (each
    Modality's own decoder) or a factory called with the modalities (`@SharedDecoder`,
    `@JointDecoder`) that decodes all of them.
    """

    def __init__(self, modalities: Sequence[Modality] = gin.REQUIRED, encoder: Callable = gin.REQUIRED,
                 objectives: Sequence[Callable] = gin.REQUIRED, decoder: Callable | None = None):
        super().__init__()
        self.modalities = nn.ModuleDict({m.name: m for m in modalities})
        self.encoder = encoder(modalities=list(self.modalities))
        self.decoder = decoder(modalities=dict(self.modalities)) if decoder else None
        self.objectives = nn.ModuleList([o for o in objectives if isinstance(o, nn.Module)])
        self.losses = list(objectives)
        self.apply(init_weights)

    def forward(self, batch: dict, rng: MaskRNG) -> ModelOutput:
        tokens = {m: modality.tokenize(batch[m]) for m, modality in self.modalities.items()}
        plans = {m: modality.mask(tokens[m], batch, rng) for m, modality in self.modalities.items()}
        present = {m: presence(batch, m, tokens[m].embed) for m in tokens}
        valid = {m: None if t.valid is None else torch.gather(t.valid, 1, plans[m].keep) for m, t in tokens.items()}
        encoded, taking_part = self.encoder({m: gather_tokens(tokens[m].embed, plans[m].keep) for m in tokens},
                                            present, valid)
        if self.decoder is not None:
            predictions = self.decoder(encoded, tokens, plans, present)
        else:
            predictions = {m: modality.decoder(encoded[m], tokens[m].grid, plans[m])
                           for m, modality in self.modalities.items() if modality.decoder is not None}
        outputs = {m: ModalityOutput(tokens[m], plans[m], encoded[m], predictions.get(m), present[m], taking_part[m])
                   for m in tokens}
        loss, logs = 0.0, {}
        for objective in self.losses:
            value, objective_logs = objective(outputs, batch)
            loss = loss + objective.weight * value
            logs.update(objective_logs)
        logs["loss"] = loss.detach()
        return ModelOutput(loss, logs, outputs)

    def encode(self, batch: dict, modality: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """All tokens of one modality, unmasked, encoded alone: ((B, N, D), valid (B, N) bool or None)."""
        tokens = self.modalities[modality].tokenize(batch[modality])
        present = {modality: torch.ones(tokens.embed.shape[0], dtype=torch.bool)}
        encoded, _ = self.encoder({modality: tokens.embed}, present, {modality: tokens.valid})
        return encoded[modality], tokens.valid

    @torch.no_grad()
    def features(self, batch: dict, modality: str) -> torch.Tensor:
        """Encoder features of one modality, mean-pooled over its non-padding tokens: (B, D)."""
        return mean_tokens(*self.encode(batch, modality))
