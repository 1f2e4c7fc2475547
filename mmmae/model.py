"""The composed masked model: modalities -> shared encoder -> decoders -> objectives."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import gin
import torch
from torch import nn

from mmmae.masking.rng import MaskRNG
from mmmae.nn.blocks import Transformer, init_weights
from mmmae.types import MaskPlan, Tokens, gather_tokens


@gin.configurable(module="mmmae")
class Modality(nn.Module):
    """One input stream: the batch key `name`, its tokenizer, its masker and its decoder.

    `decoder` is a factory (gin: `@video/MaskTokenDecoder`, no parentheses) called with the
    tokenizer's width and target size, or None for a modality that is only encoded.
    """

    def __init__(self, name: str, tokenizer: nn.Module, masker: Callable, decoder: Callable | None = None):
        super().__init__()
        self.name = name
        self.tokenizer = tokenizer
        self.masker = masker
        self.decoder = decoder(in_dim=tokenizer.dim, out_dim=tokenizer.target_dim) if decoder else None


@gin.configurable(module="mmmae")
class Encoder(Transformer):
    """The shared transformer over visible tokens: (B, K, dim) -> (B, K, dim)."""

    def __init__(self, dim: int = gin.REQUIRED, depth: int = gin.REQUIRED, heads: int = gin.REQUIRED):
        super().__init__(dim, depth, heads)
        self.dim = dim


@dataclass
class ModalityOutput:
    tokens: Tokens
    plan: MaskPlan
    encoded: torch.Tensor  # (B, K, D)
    prediction: torch.Tensor | None  # (B, Q, P)


@dataclass
class ModelOutput:
    loss: torch.Tensor
    logs: dict[str, torch.Tensor]
    outputs: dict[str, ModalityOutput]


@gin.configurable(module="mmmae")
class MaskedAutoencoder(nn.Module):
    """Tokenize, mask, encode the visible tokens, decode the predict set, sum the objectives."""

    def __init__(self, modalities: Sequence[Modality] = gin.REQUIRED, encoder: Encoder = gin.REQUIRED,
                 objectives: Sequence[Callable] = gin.REQUIRED):
        super().__init__()
        self.modalities = nn.ModuleDict({m.name: m for m in modalities})
        self.encoder = encoder
        self.objectives = list(objectives)
        self.apply(init_weights)

    def forward(self, batch: dict[str, torch.Tensor], rng: MaskRNG) -> ModelOutput:
        outputs = {}
        for name, modality in self.modalities.items():
            tokens = modality.tokenizer(batch[name])
            plan = modality.masker(tokens, batch, rng)
            encoded = self.encoder(gather_tokens(tokens.embed, plan.keep))
            prediction = modality.decoder(encoded, tokens.grid, plan) if modality.decoder else None
            outputs[name] = ModalityOutput(tokens, plan, encoded, prediction)
        loss, logs = 0.0, {}
        for objective in self.objectives:
            value, objective_logs = objective(outputs, batch)
            loss = loss + objective.weight * value
            logs.update(objective_logs)
        logs["loss"] = loss.detach()
        return ModelOutput(loss, logs, outputs)

    @torch.no_grad()
    def features(self, batch: dict[str, torch.Tensor], modality: str) -> torch.Tensor:
        """Mean-pooled encoder features of all tokens of one modality, unmasked: (B, D)."""
        tokens = self.modalities[modality].tokenizer(batch[modality])
        return self.encoder(tokens.embed).mean(dim=1)
