"""One attention function, several backends.

Backends: ``xformers`` (memory_efficient_attention, CUDA only), ``sdpa`` (torch
scaled_dot_product_attention), ``math`` (plain softmax(QK^T/sqrt(d))V, the reference) and
``auto`` (xformers on CUDA when it is installed and the dtype is half precision, else sdpa).
"""

import functools
import math

import torch
import torch.nn.functional as F
from einops import rearrange

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
