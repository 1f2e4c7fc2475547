"""The transformer MLP, fc2(gelu(fc1(x))), keeping a quarter less of its activations for backward.

Plain autograd keeps both fc1's output h (for GELU's backward) and gelu(h) (for fc2's weight
gradient): 8 x width values per token. `gelu_linear` keeps only h and recomputes gelu(h) in
backward (one elementwise pass), so a block stores 4 x width fewer values per token; the
function and its gradients are the same.
"""

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from mmmae.nn.norm_linear import norm_linear


class GeluLinear(torch.autograd.Function):
    """linear(gelu(h), weight, bias) that saves h alone: h (..., I), weight (O, I) -> (..., O).

    Under autocast the forward's linear runs in the autocast dtype; backward casts to the
    gradient's dtype and returns each gradient in its input's dtype."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(h, weight)
        ctx.bias_dtype = None if bias is None else bias.dtype
        return F.linear(F.gelu(h), weight, bias)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        h, weight = ctx.saved_tensors
        grad_h = torch.ops.aten.gelu_backward(grad.matmul(weight.to(grad.dtype)).to(h.dtype), h)
        rows = rearrange(grad, "... o -> (...) o")
        grad_weight = (rows.t() @ rearrange(F.gelu(h).to(grad.dtype), "... i -> (...) i")).to(weight.dtype)
        grad_bias = None if ctx.bias_dtype is None else rows.sum(dim=0).to(ctx.bias_dtype)
        return grad_h, grad_weight, grad_bias


class Mlp(nn.Sequential):
    """fc1 -> GELU -> fc2 (state dict keys 0.* and 2.*): (..., D) -> (..., D), hidden width `hidden`.
    While gradients are recorded, gelu(fc1(x)) is recomputed in backward (GeluLinear). The
    activation is always exact GELU: the nn.GELU at index 1 keeps timm's layout, forward does
    not call it."""

    def __init__(self, dim: int, hidden: int):
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, norm: nn.LayerNorm | None = None) -> torch.Tensor:
        """The MLP of x, or of norm(x) (fused with fc1, mmmae.nn.norm_linear) when `norm` is given."""
        fc1, _, fc2 = self
        hidden = fc1(x) if norm is None else norm_linear(x, norm, fc1)
        if not torch.is_grad_enabled():
            return fc2(F.gelu(hidden))
        return GeluLinear.apply(hidden, fc2.weight, fc2.bias)
