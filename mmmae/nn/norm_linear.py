"""linear(layer_norm(x)) that keeps x for backward but not the normalised copy.

Plain autograd keeps both the LayerNorm's input (for its backward) and its output (for the
linear's weight gradient). `norm_linear` keeps the input with the LayerNorm's per-token mean and
1/std and recomputes the output in backward (one elementwise pass): a pre-norm block stores two
fewer width-sized tensors per token. The function and its gradients are the same.
"""

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torch.autograd.function import once_differentiable


class LayerNormLinear(torch.autograd.Function):
    """linear(layer_norm(x)): x (..., D), LayerNorm weight/bias (D,), weight (O, D) -> (..., O).

    Under autocast the LayerNorm runs in float32 when its weights are float32 (as autocast runs
    F.layer_norm) and the linear in the autocast dtype; backward returns each gradient in its
    input's dtype. Differentiable once (no double backward)."""

    @staticmethod
    def forward(ctx, x, norm_weight, norm_bias, eps: float, weight, bias):
        wide = x.to(torch.promote_types(x.dtype, norm_weight.dtype))
        normed, mean, rstd = torch.ops.aten.native_layer_norm(wide, (x.shape[-1],), norm_weight, norm_bias, eps)
        ctx.save_for_backward(x, mean, rstd, norm_weight, norm_bias, weight)
        ctx.bias_dtype = None if bias is None else bias.dtype
        return F.linear(normed, weight, bias)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        x, mean, rstd, norm_weight, norm_bias, weight = ctx.saved_tensors
        wide = x.to(mean.dtype)
        normed = torch.addcmul(norm_bias, (wide - mean) * rstd, norm_weight)
        rows = rearrange(grad, "... o -> (...) o")
        grad_weight = (rows.t() @ rearrange(normed.to(grad.dtype), "... d -> (...) d")).to(weight.dtype)
        grad_bias = None if ctx.bias_dtype is None else rows.sum(dim=0).to(ctx.bias_dtype)
        grad_normed = grad.matmul(weight.to(grad.dtype)).to(wide.dtype)
        grad_x, grad_norm_weight, grad_norm_bias = torch.ops.aten.native_layer_norm_backward(
            grad_normed, wide, (x.shape[-1],), mean, rstd, norm_weight, norm_bias, [True, True, True])
        return grad_x.to(x.dtype), grad_norm_weight, grad_norm_bias, None, grad_weight, grad_bias


def norm_linear(x: torch.Tensor, norm: nn.LayerNorm, linear: nn.Linear) -> torch.Tensor:
    """linear(norm(x)), (..., D) -> (..., O); through LayerNormLinear while gradients are
    recorded and the LayerNorm is over the last dimension with a weight and a bias."""
    affine = norm.weight is not None and norm.bias is not None and len(norm.normalized_shape) == 1
    if not (torch.is_grad_enabled() and affine):
        return linear(norm(x))
    return LayerNormLinear.apply(x, norm.weight, norm.bias, norm.eps, linear.weight, linear.bias)
