"""SiamMAE's cross-self decoder: one view is reconstructed from its visible tokens and another view."""

import gin
import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn
from torch.utils.checkpoint import checkpoint

from mmmae.nn.pos_embed import sincos_pos_embed
from mmmae.types import MaskPlan, Tokens, gather_tokens


class MultiHeadAttention(nn.Module):
    """Queries x (B, N, D) attend to context (B, M, D) -> (B, N, D); self-attention when context is x.

    `dropout` drops attention weights while training (as nn.MultiheadAttention does).
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} does not divide into {heads} heads")
        self.heads = heads
        self.dropout = dropout
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        q = rearrange(self.q(x), "b n (h d) -> b h n d", h=self.heads)
        k, v = rearrange(self.kv(context), "b m (two h d) -> two b h m d", two=2, h=self.heads)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(rearrange(out, "b h n d -> b n (h d)"))


class CrossSelfBlock(nn.Module):
    """Post-norm, as in the CropMAE repository's DecoderBlock (LayerNorm eps 1e-6, GELU):
    q = LN(q + CrossAttn(q, context)); q = LN(q + FFN(q)); q = LN(q + SelfAttn(q))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0):
        super().__init__()
        self.cross_attn = MultiHeadAttention(dim, heads, dropout)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim))
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.self_attn = MultiHeadAttention(dim, heads, dropout)
        self.norm3 = nn.LayerNorm(dim, eps=1e-6)
        self.drop = nn.Dropout(dropout)

    def forward(self, q: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """q (B, N, D), context (B, M, D) -> (B, N, D)."""
        q = self.norm1(q + self.drop(self.cross_attn(q, context)))
        q = self.norm2(q + self.drop(self.mlp(q)))
        return self.norm3(q + self.drop(self.self_attn(q, q)))


@gin.configurable(module="mmmae")
class CrossViewDecoder(nn.Module):
    """Decodes modality `target` from its visible tokens and the encoded tokens of `context`
    (SiamMAE / CropMAE; gin: `MaskedAutoencoder.decoder = @CrossViewDecoder`).

    The projected visible target tokens and mask tokens are put back in grid order, fixed sin-cos
    positions of the target's grid are added, and every block cross-attends to the projected
    context (one projection for both views; the context gets no decoder positions, the encoder
    already gave them). A final LayerNorm and a linear head give predictions at
    plans[target].predict. Only `target` is predicted; other modalities get no prediction.
    checkpointing: while training, run each block under activation checkpointing (its
    activations are recomputed from its inputs in the backward pass instead of stored).
    """

    def __init__(self, modalities: dict[str, nn.Module], context: str = "view1", target: str = "view2",
                 dim: int = gin.REQUIRED, depth: int = gin.REQUIRED, heads: int = gin.REQUIRED,
                 mlp_ratio: float = 4.0, dropout: float = 0.0, pos_embed: str = "joint", checkpointing: bool = False):
        super().__init__()
        for binding, name in (("context", context), ("target", target)):
            if name not in modalities:
                raise ValueError(f"CrossViewDecoder.{binding} = {name!r} is not a modality of the model "
                                 f"({sorted(modalities)})")
        if context == target:
            raise ValueError(f"CrossViewDecoder: context and target are both {target!r}; they must differ")
        widths = {modalities[context].tokenizer.dim, modalities[target].tokenizer.dim}
        if len(widths) != 1:
            raise ValueError(f"CrossViewDecoder: the token widths of {context!r} and {target!r} differ "
                             f"({sorted(widths)})")
        self.context, self.target, self.pos_embed = context, target, pos_embed
        self.checkpointing = checkpointing
        self.embed = nn.Linear(widths.pop(), dim, bias=False)
        self.mask_token = nn.Parameter(nn.init.trunc_normal_(torch.empty(1, 1, dim), std=0.02))
        self.blocks = nn.ModuleList([CrossSelfBlock(dim, heads, mlp_ratio, dropout) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, modalities[target].target_dim)

    def forward(self, encoded: dict[str, torch.Tensor], tokens: dict[str, Tokens], plans: dict[str, MaskPlan],
                present: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """encoded {m: (B, K_m, in_dim)} -> {target: predictions (B, Q, P) at plans[target].predict}."""
        return {self.target: self.decode_target(encoded, tokens, plans)}

    def decode_target(self, encoded: dict[str, torch.Tensor], tokens: dict[str, Tokens], plans: dict[str, MaskPlan],
                      shift: torch.Tensor | None = None) -> torch.Tensor:
        """The target's predictions (B, Q, P) at plans[target].predict; `shift` (B, dim), when given, is
        added to every query after its position (a latent's embedding: VariationalDecoder)."""
        plan, grid = plans[self.target], tokens[self.target].grid
        context = self.embed(encoded[self.context])
        visible = self.embed(encoded[self.target])
        batch, num_tokens, dim = visible.shape[0], tokens[self.target].num_tokens, visible.shape[-1]
        queries = self.mask_token.to(visible.dtype).expand(batch, num_tokens, dim)
        queries = queries.scatter(1, repeat(plan.keep, "b k -> b k d", d=dim), visible)
        q = queries + sincos_pos_embed(grid, dim, self.pos_embed, visible.device).to(visible.dtype)
        if shift is not None:
            q = q + shift.to(q.dtype).unsqueeze(1)
        for block in self.blocks:
            q = checkpoint(block, q, context, use_reentrant=False) if self.checkpointing and self.training \
                else block(q, context)
        return self.head(gather_tokens(self.norm(q), plan.predict))
