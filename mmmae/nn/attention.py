"""One attention function, several backends.

Backends: ``xformers`` (memory_efficient_attention, CUDA only), ``sdpa`` (torch
scaled_dot_product_attention), ``math`` (plain softmax(QK^T/sqrt(d))V, the reference) and
``auto`` (xformers on CUDA when it is installed and the dtype is half precision, else sdpa).

`packed_attention` runs many sequences stored back to back (see mmmae.nn.packing): xformers
in one call with a block-diagonal mask; sdpa as one batched call per distinct sequence
length (on CPU faster than one call with a dense block-diagonal mask, ecosystem.md §3);
math with a dense block-diagonal mask, the reference.
"""

import functools
import math

import torch
import torch.nn.functional as F
from einops import rearrange

from mmmae.nn.packing import Packing

BACKENDS = ("auto", "xformers", "sdpa", "math")


@functools.cache
def xformers_available() -> bool:
    try:
        import xformers.ops  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_backend(backend: str, q: torch.Tensor) -> str:
    """The concrete backend `attention` would use for `backend` on tensors like `q`."""
    if backend not in BACKENDS:
        raise ValueError(f"attention backend {backend!r} is not one of {BACKENDS}")
    if backend == "auto":
        half = q.dtype in (torch.float16, torch.bfloat16)
        return "xformers" if q.is_cuda and half and xformers_available() else "sdpa"
    if backend == "xformers":
        if not q.is_cuda:
            raise RuntimeError("attention backend 'xformers' runs on CUDA only; use 'sdpa' or 'auto' on CPU")
        if not xformers_available():
            raise RuntimeError("attention backend 'xformers' needs `pip install mmmae[xformers]`")
    return backend


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, backend: str = "auto") -> torch.Tensor:
    """Multi-head attention without masking: q, k, v (B, H, N, d) -> (B, H, N, d)."""
    backend = resolve_backend(backend, q)
    if backend == "sdpa":
        return F.scaled_dot_product_attention(q, k, v)
    if backend == "math":
        weights = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))
        return weights.softmax(dim=-1) @ v
    import xformers.ops as xops

    q, k, v = (rearrange(t, "b h n d -> b n h d") for t in (q, k, v))
    return rearrange(xops.memory_efficient_attention(q, k, v), "b n h d -> b h n d")


def packed_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, packing: Packing,
                     backend: str = "auto") -> torch.Tensor:
    """Attention within each packed sequence: q, k, v (T, H, d) -> (T, H, d)."""
    backend = resolve_backend(backend, q)
    if not packing.groups:
        return torch.zeros_like(q)
    if backend == "xformers":
        from xformers.ops import memory_efficient_attention
        from xformers.ops.fmha.attn_bias import BlockDiagonalMask

        bias = BlockDiagonalMask.from_seqlens(packing.seqlens, device=q.device)
        return memory_efficient_attention(q[None], k[None], v[None], attn_bias=bias)[0]
    if backend == "math":
        sequence = torch.repeat_interleave(torch.arange(len(packing.seqlens), device=q.device),
                                           torch.tensor(packing.seqlens, device=q.device))
        same = sequence[:, None] == sequence[None, :]
        weights = torch.einsum("thd,shd->hts", q, k) * (1.0 / math.sqrt(q.shape[-1]))
        weights = weights.masked_fill(~same, float("-inf")).softmax(dim=-1)
        return torch.einsum("hts,shd->thd", weights, v)
    outputs, order = [], []
    for index, count, length in packing.groups:
        if index is None:
            q_g, k_g, v_g = (rearrange(t, "(n l) h d -> n h l d", n=count) for t in (q, k, v))
        else:
            q_g, k_g, v_g = (rearrange(t[index], "n l h d -> n h l d") for t in (q, k, v))
            order.append(index.flatten())
        outputs.append(rearrange(F.scaled_dot_product_attention(q_g, k_g, v_g), "n h l d -> (n l) h d"))
    if len(outputs) == 1 and not order:
        return outputs[0]
    inverse = torch.empty_like(torch.cat(order)).scatter_(0, torch.cat(order),
                                                          torch.arange(q.shape[0], device=q.device))
    return torch.cat(outputs)[inverse]
