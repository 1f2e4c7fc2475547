"""The shared encoder over the visible tokens of every modality, with a fusion strategy."""

from collections.abc import Sequence

import gin
import torch
from torch import nn

from mmmae.nn.blocks import Block, run_block
from mmmae.nn.packing import PackedLayout, Packing, token_masks
from mmmae.nn.sparsify import TokenSparsification
from mmmae.types import mean_tokens

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
    sparsify: a TokenSparsification (SMAUG) that drops tokens after one of the shared blocks
    while training.
    drop_path: stochastic depth, rising linearly from 0 at the first block to `drop_path` at
    the last (timm / VideoMAE fine-tuning; per sample, per token where tokens are packed);
    norm_eps: every LayerNorm's epsilon.
    final_norm: False leaves out the LayerNorm after the last block (HF VideoMAEModel with
    use_mean_pooling=True and VideoMAE's fine-tuned `fc_norm` models end without one).
    pool_norm_eps: a LayerNorm with this epsilon on the mean-pooled features (`pool`): the
    `fc_norm` of fine-tuned VideoMAE / AudioMAE models, frozen (the fine-tuning Classifier
    trains it as its fc_norm); None (default): no such norm.
    checkpointing: while training, run each block under activation checkpointing (trades
    recomputing its forward in the backward pass for not storing its activations).
    The model builds it with its modality names (gin: `MaskedAutoencoder.encoder = @Encoder`).
    """

    def __init__(self, modalities: Sequence[str], dim: int = gin.REQUIRED, depth: int = gin.REQUIRED,
                 heads: int = gin.REQUIRED, fusion: str = "joint", fusion_layers: int = 0, specific_layers: int = 0,
                 shared_layers: int | None = None, sparsify: TokenSparsification | None = None,
                 drop_path: float = 0.0, norm_eps: float = 1e-6, final_norm: bool = True,
                 checkpointing: bool = False, pool_norm_eps: float | None = None):
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
        if sparsify is not None:
            if not sparsify.after_layer < shared:
                raise ValueError(f"TokenSparsification.after_layer = {sparsify.after_layer}: tokens can be dropped "
                                 f"after shared block 1..{shared - 1} (the encoder has {shared} shared blocks)")
            if unknown := set(sparsify.modalities) - set(modalities):
                raise ValueError(f"TokenSparsification.modalities names {sorted(unknown)}, not among the model's "
                                 f"modalities {list(modalities)}")
        self.sparsify = sparsify
        self.checkpointing = checkpointing
        self.dim = dim
        rates = torch.linspace(0, drop_path, depth).tolist()
        self.specific = nn.ModuleDict({m: nn.ModuleList(
            [Block(dim, heads, drop_path=rates[i], norm_eps=norm_eps) for i in range(specific_layers)])
            for m in modalities})
        self.blocks = nn.ModuleList(
            [Block(dim, heads, drop_path=rates[i], norm_eps=norm_eps) for i in range(specific_layers, depth)])
        self.joint_from = {"separate": shared, "joint": 0, "mid": shared - fusion_layers}[fusion]
        self.norm = nn.LayerNorm(dim, eps=norm_eps) if final_norm else nn.Identity()
        # Frozen: pretraining never uses it (DDP would wait for its gradients); fine-tuning takes it.
        self.pool_norm = None if pool_norm_eps is None else nn.LayerNorm(dim, eps=pool_norm_eps).requires_grad_(False)

    def pool(self, encoded: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """Encodings (B, N, D), valid (B, N) bool or None (all) -> pooled features (B, D): the
        mean over valid tokens, through `pool_norm` when the encoder has one."""
        pooled = mean_tokens(encoded, valid)
        return pooled if self.pool_norm is None else self.pool_norm(pooled)

    def forward(self, parts: dict[str, torch.Tensor], present: dict[str, torch.Tensor | None],
                valid: dict[str, torch.Tensor | None] | None = None, drop_tokens: bool = True,
                blocks: int | None = None) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """parts {m: (B, K_m, D)}, present {m: (B,) bool, or None when every sample has m},
        valid {m: (B, K_m) bool, or None when nothing is padded} -> ({m: (B, K_m, D)},
        {m: (B, K_m) bool}): the encodings, zeros where a token took no part (absent samples,
        padding, tokens dropped by `sparsify`), and where they took part.

        When every present and valid is None, every token takes part: the blocks run on the
        dense (B, K_m, D) tensors, with no packing and no look at the masks' values.
        drop_tokens=False keeps `sparsify` from dropping any (a full view of every token).
        blocks: the tokens after the first `blocks` blocks (modality-specific ones first), without
        the final norm (a teacher's intermediate tokens); None: after every block and the norm."""
        depth = len(self.blocks) + self.specific_depth
        if blocks is not None and not 1 <= blocks <= depth:
            raise ValueError(f"the tokens after block {blocks}: the encoder has blocks 1..{depth}")
        shared = len(self.blocks) if blocks is None else max(blocks - self.specific_depth, 0)
        parts = dict(parts)
        for m, specific in self.specific.items():
            if m in parts:
                for block in specific[:blocks]:
                    parts[m] = self.apply_block(block, parts[m])
        everyone = all(present[m] is None and (valid is None or valid.get(m) is None) for m in parts)
        sparsify = self.sparsify if self.training and drop_tokens else None
        norm = self.norm if blocks is None else nn.Identity()
        if everyone and sparsify is None:
            return self.dense(parts, shared, norm)
        return self.packed(parts, present, valid, sparsify, shared, norm)

    @property
    def specific_depth(self) -> int:
        """How many modality-specific blocks come before the shared ones."""
        return len(next(iter(self.specific.values()), []))

    def apply_block(self, block: Block, x: torch.Tensor, packing: Packing | None = None) -> torch.Tensor:
        """block(x, packing), checkpointed while training with `checkpointing`."""
        return run_block(block, x, packing, checkpointing=self.checkpointing and self.training)

    def dense(self, parts: dict[str, torch.Tensor], shared: int, norm: nn.Module
              ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Every token takes part: the first `shared` shared blocks, separate ones on each
        (B, K_m, D), joint ones on their concatenation (B, sum K_m, D), then `norm`."""
        for block in self.blocks[: min(self.joint_from, shared)]:
            parts = {m: self.apply_block(block, x) for m, x in parts.items()}
        if self.joint_from < shared:
            x = torch.cat(list(parts.values()), dim=1)
            for block in self.blocks[self.joint_from : shared]:
                x = self.apply_block(block, x)
            parts = dict(zip(parts, x.split([p.shape[1] for p in parts.values()], dim=1)))
        masks = {m: torch.ones(p.shape[:2], dtype=torch.bool, device=p.device) for m, p in parts.items()}
        return {m: norm(x) for m, x in parts.items()}, masks

    def packed(self, parts: dict[str, torch.Tensor], present: dict[str, torch.Tensor | None],
               valid: dict[str, torch.Tensor | None] | None, sparsify: TokenSparsification | None, shared: int,
               norm: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Tokens of every modality and sample back to back (mmmae.nn.packing), those that take
        no part left out, through the first `shared` shared blocks and `norm`; `sparsify` (None:
        none) drops more after its layer."""
        shapes = {m: p.shape[:2] for m, p in parts.items()}
        masks = token_masks(parts, present, valid)
        layout = PackedLayout(masks, next(iter(parts.values())).device)
        x = layout.pack(parts)
        for i, block in enumerate(self.blocks[:shared]):
            if sparsify is not None and i == sparsify.after_layer:
                parts = layout.unpack(x, shapes)
                masks = sparsify.select(block, parts, {m: mask.to(x.device) for m, mask in masks.items()},
                                             joint=i >= self.joint_from)
                layout = PackedLayout(masks, x.device)
                x = layout.pack(parts)
            x = self.apply_block(block, x, layout.joint if i >= self.joint_from else layout.separate)
        return layout.unpack(norm(x), shapes), {m: mask.to(x.device) for m, mask in layout.masks.items()}
