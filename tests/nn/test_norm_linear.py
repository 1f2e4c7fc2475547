"""norm_linear (LayerNorm output recomputed in backward) equals linear(norm(x)) and keeps less."""

import pytest
import torch
from torch import nn

from mmmae.nn.norm_linear import norm_linear
from tests.float32_bound import cast_tolerances, rounding_bound


def layers(seed: int = 0) -> tuple[nn.LayerNorm, nn.Linear]:
    torch.manual_seed(seed)
    norm, linear = nn.LayerNorm(16, eps=1e-6), nn.Linear(16, 24)
    with torch.no_grad():  # a non-trivial affine LayerNorm, so its parameters' gradients are checked
        norm.weight.normal_(1.0, 0.2)
        norm.bias.normal_(0.0, 0.2)
    return norm, linear


def run(forward, x: torch.Tensor, norm: nn.LayerNorm, linear: nn.Linear):
    x = x.clone().requires_grad_()
    y = forward(x)
    y.backward(torch.randn(y.shape, generator=torch.Generator().manual_seed(3)))
    params = [*norm.parameters(), *linear.parameters()]
    grads = [x.grad] + [p.grad.clone() for p in params]
    for p in params:
        p.grad = None
    return y.detach(), grads


def test_norm_linear_matches_linear_of_norm_and_all_gradients():
    norm, linear = layers()
    x = 3.0 * torch.randn(2, 5, 16) + 1.0
    y_ref, grads_ref = run(lambda v: linear(norm(v)), x, norm, linear)
    y, grads = run(lambda v: norm_linear(v, norm, linear), x, norm, linear)
    # forward: the norm's and the linear's sums of 16 terms; gradients: those and the backward's, whose
    # longest sum runs over the 24 outputs (the weights' over 2 * 5 tokens)
    assert (y - y_ref).abs().max() <= rounding_bound(y_ref, 2, 16)
    for got, want in zip(grads, grads_ref, strict=True):
        assert (got - want).abs().max() <= rounding_bound(want, 4, 24)


def test_norm_linear_does_not_keep_the_normalised_copy():
    norm, linear = layers()
    x = torch.randn(4, 32, 16, requires_grad=True)
    sizes = []
    params = {p.data_ptr() for p in [*norm.parameters(), *linear.parameters()]}

    def kept(forward) -> int:
        sizes.clear()

        def pack(t):
            if t.data_ptr() not in params:
                sizes.append(t.numel())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            forward(x)
        return sum(sizes)

    assert kept(lambda v: linear(norm(v))) - kept(lambda v: norm_linear(v, norm, linear)) >= 4 * 32 * 16 - 2 * 4 * 32


def autocast_run(forward, x: torch.Tensor, norm: nn.LayerNorm, linear: nn.Linear):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return run(lambda v: forward(v).float(), x, norm, linear)


def test_norm_linear_under_bfloat16_autocast_matches_the_plain_layers():
    norm, linear = layers()
    x = torch.randn(2, 3, 16)
    y_ref, grads_ref = autocast_run(lambda v: linear(norm(v)), x, norm, linear)
    y, grads = autocast_run(lambda v: norm_linear(v, norm, linear), x, norm, linear)
    torch.testing.assert_close(y, y_ref, **cast_tolerances(y_ref))
    for got, want in zip(grads, grads_ref, strict=True):
        assert got.dtype == want.dtype == torch.float32
        torch.testing.assert_close(got, want, **cast_tolerances(want))


def test_a_bfloat16_input_is_normalised_in_float32_as_autocast_does():
    """bf16 tokens into float32 LayerNorm weights (as under autocast): the norm runs in float32
    (the CUDA kernel refuses mixed dtypes) and x's gradient comes back in bfloat16."""
    norm, linear = layers()
    x = torch.randn(2, 3, 16).to(torch.bfloat16)
    y_ref, grads_ref = autocast_run(lambda v: linear(norm(v.float())), x, norm, linear)
    y, grads = autocast_run(lambda v: norm_linear(v, norm, linear), x, norm, linear)
    torch.testing.assert_close(y, y_ref, **cast_tolerances(y_ref))
    assert grads[0].dtype == torch.bfloat16
    for got, want in zip(grads, grads_ref, strict=True):  # x's gradient is cast once more, to x's bfloat16
        torch.testing.assert_close(got.float(), want.float(), **cast_tolerances(want, casts=3))


def test_a_layer_norm_without_affine_parameters_takes_the_plain_path():
    linear = nn.Linear(16, 24)
    for norm in (nn.LayerNorm(16, elementwise_affine=False), nn.LayerNorm(16, bias=False)):
        x = torch.randn(2, 3, 16)
        y_ref, grads_ref = run(lambda v: linear(norm(v)), x, norm, linear)
        y, grads = run(lambda v: norm_linear(v, norm, linear), x, norm, linear)
        torch.testing.assert_close(y, y_ref)
        for got, want in zip(grads, grads_ref, strict=True):
            torch.testing.assert_close(got, want)


def test_double_backward_is_refused_rather_than_wrong():
    norm, linear = layers()
    x = torch.randn(2, 3, 16, requires_grad=True)
    (grad,) = torch.autograd.grad(norm_linear(x, norm, linear).square().sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|does not require grad"):
        grad.sum().backward()
