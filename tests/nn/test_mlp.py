"""The MLP that recomputes GELU in backward computes the plain MLP's function and gradients, keeping less."""

import torch
import torch.nn.functional as F

from mmmae.nn.mlp import Mlp
from tests.float32_bound import cast_tolerances, rounding_bound


def plain(mlp: Mlp, x: torch.Tensor) -> torch.Tensor:
    fc1, _, fc2 = mlp
    return fc2(F.gelu(fc1(x)))


def outputs_and_gradients(forward, mlp: Mlp, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    x = x.clone().requires_grad_()
    y = forward(mlp, x)
    y.backward(torch.randn(y.shape, generator=torch.Generator().manual_seed(3)))
    grads = [x.grad] + [p.grad.clone() for p in mlp.parameters()]
    mlp.zero_grad(set_to_none=True)
    return y.detach(), grads


def saved_bytes(forward, mlp: Mlp, x: torch.Tensor) -> int:
    """Bytes of the tensors autograd keeps for backward (ignoring the parameters)."""
    saved = []
    params = {p.data_ptr() for p in mlp.parameters()}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if t.data_ptr() not in params:
            saved.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        forward(mlp, x.clone().requires_grad_())
    return sum(saved)


def test_recomputing_mlp_matches_the_plain_mlp_and_its_gradients():
    torch.manual_seed(0)
    mlp, x = Mlp(16, 64), torch.randn(2, 5, 16)
    y_ref, grads_ref = outputs_and_gradients(plain, mlp, x)
    y, grads = outputs_and_gradients(lambda m, v: m(v), mlp, x)
    # fc1 (16 terms), fc2 (64): 2 sums forward and 2 back, the weights' over 2 * 5 tokens
    assert (y - y_ref).abs().max() <= rounding_bound(y_ref, 2, 64)
    for got, want in zip(grads, grads_ref, strict=True):
        assert (got - want).abs().max() <= rounding_bound(want, 4, 64)


def test_recomputing_mlp_keeps_the_gelu_output_out_of_memory():
    mlp, x = Mlp(16, 64), torch.randn(4, 32, 16)
    hidden_bytes = 4 * 32 * 64 * 4  # one (4, 32, 64) float32 tensor
    assert saved_bytes(plain, mlp, x) - saved_bytes(lambda m, v: m(v), mlp, x) >= hidden_bytes


def test_recomputing_mlp_under_bfloat16_autocast_matches_the_plain_mlp():
    torch.manual_seed(0)
    mlp, x = Mlp(8, 32), torch.randn(2, 3, 8)

    def autocast(forward):
        def run(m, v):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return forward(m, v).float()
        return run

    y_ref, grads_ref = outputs_and_gradients(autocast(plain), mlp, x)
    y, grads = outputs_and_gradients(autocast(lambda m, v: m(v)), mlp, x)
    torch.testing.assert_close(y, y_ref, **cast_tolerances(y_ref))
    for got, want in zip(grads, grads_ref, strict=True):
        assert got.dtype == want.dtype == torch.float32
        torch.testing.assert_close(got, want, **cast_tolerances(want))


def test_mlp_without_gradients_is_the_plain_mlp():
    mlp, x = Mlp(8, 32), torch.randn(3, 8)
    with torch.no_grad():
        assert torch.equal(mlp(x), plain(mlp, x))
