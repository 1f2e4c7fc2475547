"""The attention backends compute the same function."""

import pytest
import torch

from mmmae.nn.attention import attention, resolve_backend, xformers_available
from mmmae.nn.blocks import Block


def qkv(dtype=torch.float32, device="cpu"):
    g = torch.Generator().manual_seed(0)
    return [torch.randn(2, 3, 50, 16, generator=g).to(device=device, dtype=dtype) for _ in range(3)]


def test_sdpa_and_math_agree():
    q, k, v = qkv()
    assert torch.allclose(attention(q, k, v, "sdpa"), attention(q, k, v, "math"), atol=1e-5)


def test_auto_on_cpu_is_sdpa_and_xformers_refuses_cpu():
    q, _, _ = qkv()
    assert resolve_backend("auto", q) == "sdpa"
    with pytest.raises(RuntimeError, match="CUDA only"):
        attention(q, q, q, "xformers")
    with pytest.raises(ValueError, match="not one of"):
        attention(q, q, q, "flash")


def test_block_gradients_agree_across_backends():
    torch.manual_seed(0)
    x = torch.randn(2, 10, 32)
    grads = []
    for backend in ("sdpa", "math"):
        torch.manual_seed(1)
        block = Block(32, 4, backend=backend)
        block(x).square().sum().backward()
        grads.append(block.attn.qkv.weight.grad)
    assert torch.allclose(grads[0], grads[1], atol=1e-4)


@pytest.mark.skipif(not (torch.cuda.is_available() and xformers_available()), reason="needs CUDA and xformers")
def test_xformers_matches_sdpa_on_cuda():
    q, k, v = qkv(torch.float16, "cuda")
    assert torch.allclose(attention(q, k, v, "xformers"), attention(q, k, v, "sdpa"), atol=2e-3)
