"""A classifier for fine-tuning: a copy of one modality's tokenizer and the encoder, mean pooling,
fc_norm and a linear head (VideoMAE's fine-tuning model)."""

import copy
import re

import torch
from torch import nn

from mmmae.types import mean_tokens

HEAD_INIT_SCALE = 0.001  # VideoMAE's init_scale: the head starts near zero


class Classifier(nn.Module):
    """inputs of `modality` -> logits (B, num_classes): tokenize (with the modality embedding),
    encode unmasked, mean over valid tokens, LayerNorm (fc_norm), linear head.

    The tokenizer and encoder are copies of `model`'s, so training leaves `model` untouched;
    the modality's decoder and masker, other modalities' blocks and the encoder's token
    sparsification (a pretraining device) are left out.
    """

    def __init__(self, model: nn.Module, modality: str, num_classes: int):
        super().__init__()
        self.name = modality
        self.modality = copy.deepcopy(model.modalities[modality])
        self.modality.decoder = self.modality.masker = None
        self.encoder = copy.deepcopy(model.encoder)
        specific = self.encoder.specific
        self.encoder.specific = nn.ModuleDict({modality: specific[modality]} if modality in specific else {})
        self.encoder.sparsify = None
        dim = self.encoder.dim
        pool_norm, self.encoder.pool_norm = self.encoder.pool_norm, None  # a converted fc_norm: kept
        self.fc_norm = nn.LayerNorm(dim, eps=1e-6) if pool_norm is None else pool_norm.requires_grad_(True)
        self.head = nn.Linear(dim, num_classes)
        nn.init.trunc_normal_(self.head.weight, std=0.02)
        with torch.no_grad():
            self.head.weight.mul_(HEAD_INIT_SCALE)
        nn.init.zeros_(self.head.bias)

    def blocks(self) -> list[nn.Module]:
        """The encoder blocks this modality passes through, in order (its own, then the shared ones)."""
        return [*self.encoder.specific[self.name], *self.encoder.blocks] if self.name in self.encoder.specific \
            else list(self.encoder.blocks)

    @property
    def num_layers(self) -> int:
        return len(self.blocks())

    def layer_id(self, name: str) -> int:
        """The depth of a parameter for layer-wise lr decay: 0 the tokenizer and modality embedding,
        i + 1 the i-th block on the path, num_layers + 1 the final norm, fc_norm and head."""
        if name.startswith("modality."):
            return 0
        if match := re.match(r"encoder\.specific\.[^.]+\.(\d+)\.", name):
            return int(match.group(1)) + 1
        if match := re.match(r"encoder\.blocks\.(\d+)\.", name):
            return self.num_layers - len(self.encoder.blocks) + int(match.group(1)) + 1
        return self.num_layers + 1

    def set_drop_path(self, rate: float) -> None:
        """Stochastic depth rising linearly from 0 at the first block to `rate` at the last."""
        blocks = self.blocks()
        for block, block_rate in zip(blocks, torch.linspace(0, rate, len(blocks)).tolist()):
            block.drop_path.rate = block_rate

    def forward(self, inputs) -> torch.Tensor:
        tokens = self.modality.tokenize(inputs)
        present = {self.name: torch.ones(tokens.embed.shape[0], dtype=torch.bool)}
        embed, valid = self.modality.with_cls(tokens.embed, tokens.valid)  # a class token (MAE) takes part
        encoded = self.encoder({self.name: embed}, present, {self.name: valid})[0][self.name]
        patches = encoded[:, 1:] if self.modality.cls_token is not None else encoded  # pooled without it
        return self.head(self.fc_norm(mean_tokens(patches, tokens.valid)))
