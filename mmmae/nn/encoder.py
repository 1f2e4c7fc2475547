"""The shared encoder over the visible tokens of every modality, with a fusion strategy."""

from collections.abc import Sequence

import gin
import torch
from torch import nn

from mmmae.nn.blocks import Block
from mmmae.nn.packing import PackedLayout, token_masks

FUSIONS = ("separate", "joint", "mid")


@gin.configurable(module="mmmae")
class Encoder(nn.Module):
    """One transformer for all modalities; `fusion` says which tokens attend to which.

    fusion: ``separate`` (shared weights, attention within each modality), ``joint`` (early
    fusion: one sequence per sample), ``mid`` (the last `fusion_layers` blocks joint, the
    ones before separate). specific_layers: the first n of the `depth` blocks have weights of
    their own per modality (CAV-MAE: 11 of 12), attention within the modality; or say
    shared_layers: the last n blocks are shared and the rest specific (CAV-MAE: 1), so a
    recipe need not know the model's depth.
    The model builds it with its modality names (gin: `MaskedAutoencoder.encoder = @Encoder`).
    """

    def __init__(self, modalities: Sequence[str], dim: int = gin.REQUIRED, depth: int = gin.REQUIRED,
                 heads: int = gin.REQUIRED, fusion: str = "joint", fusion_layers: int = 0, specific_layers: int = 0,
                 shared_layers: int | None = None):
        super().__init__()
        if shared_layers is not None:
            if specific_layers or not 0 <= shared_layers <= depth:
                raise ValueError(f"Encoder.shared_layers = {shared_layers}: give it alone, in [0, depth={depth}]")
            specific_layers = depth - shared_layers
        if fusion not in FUSIONS:
            raise ValueError(f"Encoder.fusion = {fusion!r} is not one of {FUSIONS}")
        if not 0 <= specific_layers <= depth:
            raise ValueError(f"Encoder.specific_layers = {specific_layers} must lie in [0, depth={depth}]")
        shared = depth - specific_layers
        if fusion == "mid" and not 0 < fusion_layers <= shared:
            raise ValueError(f"Encoder.fusion_layers = {fusion_layers}: 'mid' fusion needs 1..{shared} joint blocks "
                             f"(depth {depth} minus {specific_layers} modality-specific)")
        self.dim = dim
        self.specific = nn.ModuleDict(
            {m: nn.ModuleList([Block(dim, heads) for _ in range(specific_layers)]) for m in modalities})
        self.blocks = nn.ModuleList([Block(dim, heads) for _ in range(shared)])
        self.joint_from = {"separate": shared, "joint": 0, "mid": shared - fusion_layers}[fusion]
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, parts: dict[str, torch.Tensor], present: dict[str, torch.Tensor],
                valid: dict[str, torch.Tensor | None] | None = None) -> dict[str, torch.Tensor]:
        """parts {m: (B, K_m, D)}, present {m: (B,) bool}, valid {m: (B, K_m) bool or None}
        -> {m: (B, K_m, D)}; zeros for absent samples and padding, which take no part."""
        parts = dict(parts)
        for m, blocks in self.specific.items():
            if m in parts:
                for block in blocks:
                    parts[m] = block(parts[m])
        first = next(iter(parts.values()))
        layout = PackedLayout(token_masks(parts, present, valid), first.device)
        x = layout.pack(parts)
        for i, block in enumerate(self.blocks):
            x = block(x, layout.joint if i >= self.joint_from else layout.separate)
        return layout.unpack(self.norm(x), {m: p.shape[:2] for m, p in parts.items()})
