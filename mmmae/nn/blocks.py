"""Pre-norm ViT blocks with a fused qkv projection.

Each LayerNorm runs fused with the linear after it (norm_linear) and the MLP recomputes its
GELU in backward (mmmae.nn.mlp), so a block keeps 10 instead of 16 width-sized tensors per
token for backward; the function and its gradients are the same.
"""

import gin
import torch
from einops import rearrange
from torch import nn
from torch.utils.checkpoint import checkpoint

from mmmae.nn.attention import attention, packed_attention
from mmmae.nn.mlp import Mlp
from mmmae.nn.norm_linear import norm_linear
from mmmae.nn.packing import Packing


class Attention(nn.Module):
    """Multi-head self-attention: (B, N, D) -> (B, N, D), or packed (T, D) -> (T, D) within
    the sequences of `packing`."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool = True, backend: str = "auto"):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} does not divide into {heads} heads")
        self.heads = heads
        self.backend = backend
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, packing: Packing | None = None, norm: nn.LayerNorm | None = None
                ) -> torch.Tensor:
        """Attention over x, or over norm(x) (fused with the qkv projection) when `norm` is given."""
        qkv = self.qkv(x) if norm is None else norm_linear(x, norm, self.qkv)
        if packing is not None:
            q, k, v = rearrange(qkv, "t (three h d) -> three t h d", three=3, h=self.heads)
            return self.proj(rearrange(packed_attention(q, k, v, packing, self.backend), "t h d -> t (h d)"))
        q, k, v = rearrange(qkv, "b n (three h d) -> three b h n d", three=3, h=self.heads)
        out = attention(q, k, v, backend=self.backend)
        return self.proj(rearrange(out, "b h n d -> b n (h d)"))


class DropPath(nn.Module):
    """Stochastic depth: while training, zero a residual branch per sample with probability
    `rate` and scale the kept ones by 1 / (1 - rate); the identity in eval mode."""

    def __init__(self, rate: float = 0.0):
        super().__init__()
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"drop path rate must lie in [0, 1), got {rate}")
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0.0:
            return x
        keep = torch.empty((x.shape[0],) + (1,) * (x.ndim - 1), device=x.device, dtype=x.dtype)
        return x * keep.bernoulli_(1.0 - self.rate) / (1.0 - self.rate)


@gin.configurable(module="mmmae")
class Block(nn.Module):
    """x + attn(norm(x)), then x + mlp(norm(x)); LayerNorm eps 1e-6 as in VideoMAE.

    drop_path: stochastic depth rate of both residual branches (per sample; packed (T, D)
    inputs drop per token). norm_eps: HF transformers' VideoMAE/ViTMAE use 1e-12.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True, backend: str = "auto",
                 drop_path: float = 0.0, norm_eps: float = 1e-6):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, heads, qkv_bias=qkv_bias, backend=backend)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, packing: Packing | None = None) -> torch.Tensor:
        x = x + self.drop_path(self.attn(x, packing, norm=self.norm1))  # attn(norm1(x))
        return x + self.drop_path(self.mlp(x, norm=self.norm2))  # mlp(norm2(x))


def run_block(block: Block, x: torch.Tensor, packing: Packing | None = None, checkpointing: bool = False
              ) -> torch.Tensor:
    """block(x, packing); with `checkpointing`, under activation checkpointing: the block's
    activations are not stored but recomputed from x in the backward pass."""
    if checkpointing:
        return checkpoint(block, x, packing, use_reentrant=False)
    return block(x, packing)


class Transformer(nn.Module):
    """A stack of blocks and a final LayerNorm: (B, N, D) -> (B, N, D), or packed (T, D).

    norm_eps: the blocks' LayerNorm epsilon; final_norm_eps: the last LayerNorm's (default the
    same; HF VideoMAE's decoder has 1e-12 in its blocks and torch's 1e-5 at the end).
    checkpointing: while training, run each block under activation checkpointing (trades
    recomputing its forward in the backward pass for not storing its activations)."""

    def __init__(self, dim: int, depth: int, heads: int, norm_eps: float = 1e-6, final_norm_eps: float | None = None,
                 checkpointing: bool = False):
        super().__init__()
        self.blocks = nn.ModuleList([Block(dim, heads, norm_eps=norm_eps) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=norm_eps if final_norm_eps is None else final_norm_eps)
        self.checkpointing = checkpointing

    def forward(self, x: torch.Tensor, packing: Packing | None = None) -> torch.Tensor:
        for block in self.blocks:
            x = run_block(block, x, packing, checkpointing=self.checkpointing and self.training)
        return self.norm(x)


def init_weights(module: nn.Module) -> None:
    """MAE init (use with Module.apply): xavier-uniform linears and patch convolutions (seen
    as linears over the flattened patch), zero biases, unit LayerNorms."""
    if isinstance(module, (nn.Linear, nn.Conv2d, nn.Conv3d)):
        nn.init.xavier_uniform_(module.weight.view(module.weight.shape[0], -1))
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
