"""One decoder over all modalities at once, optionally predicting each from the others only."""

import gin
import torch
from torch import nn

from mmmae.nn.packing import PackedLayout, token_masks
from mmmae.nn.shared_decoder import FusedDecoder
from mmmae.types import MaskPlan, Tokens


@gin.configurable(module="mmmae")
class JointDecoder(FusedDecoder):
    """Visible tokens and mask tokens of every modality in one sequence per sample (CAV-MAE).

    cross_modal=True (AV-MAE's inpainting): the mask tokens of modality A attend only to the
    other modalities' visible tokens and to each other, so A is reconstructed from the
    others; one decoder pass per modality. Absent modalities take no part. checkpointing: while
    training, run each block under activation checkpointing.
    """

    def __init__(self, modalities: dict[str, nn.Module], dim: int = gin.REQUIRED, depth: int = gin.REQUIRED,
                 heads: int = gin.REQUIRED, pos_embed: str = "joint", cross_modal: bool = False,
                 checkpointing: bool = False):
        super().__init__(modalities, dim, depth, heads, pos_embed, checkpointing)
        if cross_modal and len(modalities) < 2:
            raise ValueError("JointDecoder.cross_modal = True needs at least two modalities")
        self.cross_modal = cross_modal

    def _decode(self, parts: dict[str, torch.Tensor], present: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        first = next(iter(parts.values()))
        layout = PackedLayout(token_masks(parts, present), first.device)
        return layout.unpack(self.transformer(layout.pack(parts), layout.joint),
                             {m: p.shape[:2] for m, p in parts.items()})

    def forward(self, encoded: dict[str, torch.Tensor], tokens: dict[str, Tokens], plans: dict[str, MaskPlan],
                present: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """{m: (B, K_m, in_dim)} -> {m: predictions (B, Q_m, P_m)} at plans[m].predict."""
        visible = {m: self.visible(m, encoded[m], tokens[m], plans[m]) for m in self.heads}
        queries = {m: self.queries(m, tokens[m], plans[m]).expand(visible[m].shape[0], -1, -1) for m in self.heads}
        if self.cross_modal:
            decoded = {}
            for target in self.heads:
                parts = {m: visible[m] for m in self.heads if m != target}
                parts[target] = queries[target]
                decoded[target] = self._decode(parts, present)[target]
        else:
            both = self._decode({m: torch.cat([visible[m], queries[m]], dim=1) for m in self.heads}, present)
            decoded = {m: x[:, x.shape[1] - queries[m].shape[1]:] for m, x in both.items()}
        return {m: self.heads[m](x) for m, x in decoded.items()}
