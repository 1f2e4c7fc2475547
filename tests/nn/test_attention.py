"""The attention backends compute the same function."""

import pytest
import torch
from einops import rearrange

from mmmae.nn.attention import attention, packed_attention, resolve_backend, xformers_available
from mmmae.nn.blocks import Block
from mmmae.nn.packing import Packing
from tests.float32_bound import rounding_bound

# attention's three successive sums: scores over the head width, softmax and the weighted sum over the keys
STAGES = 3


def qkv(dtype=torch.float32, device="cpu"):
    g = torch.Generator().manual_seed(0)
    return [torch.randn(2, 3, 50, 16, generator=g).to(device=device, dtype=dtype) for _ in range(3)]


def test_sdpa_and_math_agree():
    q, k, v = qkv()
    reference = attention(q, k, v, "math")
    assert (attention(q, k, v, "sdpa") - reference).abs().max() <= rounding_bound(reference, STAGES, 50)  # 50 keys


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
    # a block forward and backward, then the weight gradient's sum over the 2 * 10 tokens; the longest
    # sum is the MLP's 128 hidden units
    assert (grads[0] - grads[1]).abs().max() <= rounding_bound(grads[1], 3, 128)


@pytest.mark.skipif(not (torch.cuda.is_available() and xformers_available()), reason="needs CUDA and xformers")
def test_xformers_matches_sdpa_on_cuda():
    q, k, v = qkv(torch.float16, "cuda")
    assert torch.allclose(attention(q, k, v, "xformers"), attention(q, k, v, "sdpa"), atol=2e-3)


def packed_qkv(seqlens, dtype=torch.float32, device="cpu"):
    g = torch.Generator().manual_seed(0)
    return [torch.randn(sum(seqlens), 3, 16, generator=g).to(device=device, dtype=dtype) for _ in range(3)]


def unpacked_reference(q, k, v, seqlens):
    """Attention run on each sequence alone, concatenated back."""
    out, start = [], 0
    for n in seqlens:
        chunk = [rearrange(t[start : start + n], "l h d -> 1 h l d") for t in (q, k, v)]
        out.append(rearrange(attention(*chunk, backend="math"), "1 h l d -> l h d"))
        start += n
    return torch.cat(out)


@pytest.mark.parametrize("backend", ["sdpa", "math"])
def test_packed_attention_equals_attention_per_sequence(backend):
    seqlens = [5, 3, 5, 7, 3, 1]
    q, k, v = packed_qkv(seqlens)
    packed = packed_attention(q, k, v, Packing(seqlens, "cpu"), backend)
    reference = unpacked_reference(q, k, v, seqlens)
    # masked to its sequence, each query's sums run over at most the 24 packed keys
    assert (packed - reference).abs().max() <= rounding_bound(reference, STAGES, sum(seqlens))


def test_packed_attention_gradients_match_unpacked():
    seqlens = [4, 2, 4]
    grads = []
    for run in ("packed", "unpacked"):
        q, k, v = (t.requires_grad_() for t in packed_qkv(seqlens))
        out = packed_attention(q, k, v, Packing(seqlens, "cpu"), "sdpa") if run == "packed" else \
            unpacked_reference(q, k, v, seqlens)
        out.square().sum().backward()
        grads.append(q.grad)
    # forward, then backward through the same three sums
    assert (grads[0] - grads[1]).abs().max() <= rounding_bound(grads[1], 2 * STAGES, sum(seqlens))


@pytest.mark.skipif(not (torch.cuda.is_available() and xformers_available()), reason="needs CUDA and xformers")
def test_packed_xformers_matches_per_sequence_on_cuda():
    seqlens = [50, 30, 50, 7]
    q, k, v = packed_qkv(seqlens, torch.float16, "cuda")
    packed = packed_attention(q, k, v, Packing(seqlens, "cuda"), "xformers")
    assert torch.allclose(packed.float(), unpacked_reference(q.float(), k.float(), v.float(), seqlens), atol=2e-3)
