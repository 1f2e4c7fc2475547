"""A stand-in for MaskedAutoencoder in evaluation tests: the "encoder" returns its input tokens.

A modality's input is its tokens (B, N, D), or a dict of them (IMU-like devices, joined along
N); a `padded` modality marks all-zero tokens invalid (like text padding). Every encoding is
scaled by one parameter, so the model has a device and a train/eval mode.
"""

import torch
from torch import nn

from mmmae.objectives.objective_list import ObjectiveList
from mmmae.types import Tokens, mean_tokens


class FakeModality(nn.Module):
    def __init__(self, padded: bool = False):
        super().__init__()
        self.padded = padded

    def tokenize(self, inputs) -> Tokens:
        x = torch.cat(list(inputs.values()), dim=1) if isinstance(inputs, dict) else inputs
        valid = (x != 0).any(dim=-1) if self.padded else None
        return Tokens(embed=x, target=None, grid=(x.shape[1],), valid=valid)


class FakeEncoder(nn.Module):
    """Pools as Encoder.pool without a pool_norm: the mean over valid tokens."""

    def pool(self, encoded: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        return mean_tokens(encoded, valid)


class FakeModel(nn.Module):
    def __init__(self, modalities: dict[str, FakeModality], objectives=()):
        super().__init__()
        self.modalities = nn.ModuleDict(modalities)
        self.encoder = FakeEncoder()
        self.objectives = ObjectiveList(objectives)
        self.scale = nn.Parameter(torch.ones(()))
        self.encoded = []  # the modalities encode() saw, in call order

    def encode(self, batch: dict, modality: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        assert not torch.is_grad_enabled() and not self.training, "evaluations encode frozen, in eval mode"
        self.encoded.append(modality)
        tokens = self.modalities[modality].tokenize(batch[modality])
        return tokens.embed * self.scale, tokens.valid

    def features(self, batch: dict, modality: str) -> torch.Tensor:
        return mean_tokens(*self.encode(batch, modality))
