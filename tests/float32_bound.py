"""Bounds on how far two evaluations of the same network may differ by rounding alone (float32, or bfloat16 casts)."""

import math

import torch

EPS = torch.finfo(torch.float32).eps


def rounding_bound(reference: torch.Tensor, stages: int, terms: int, dtype: torch.dtype = torch.float32) -> float:
    """The most two float32 evaluations of one function may differ when they differ only in
    rounding (summation order, fused kernels, the CPU's instruction set: AVX2, AVX-512, AMX).

    Each of `stages` successive stages (a patch projection, a transformer block, a pooling
    norm) adds sums of at most `terms` products; the standard a-priori bound on such a sum is
    terms * eps of its size, taken here at the reference's largest magnitude. The bound is not
    a margin fitted to one machine: it grows with the quantities, and dropping or misplacing a
    tensor moves outputs by their own size (~0.1 to 1 here), far above it. `dtype`: the
    precision the stages round to (bfloat16 under autocast).
    """
    return torch.finfo(dtype).eps * stages * terms * reference.detach().abs().max().item()


def vit_stages(depth: int, decoder_depth: int | None = None) -> int:
    """The successive stages of a ViT MAE forward, for `rounding_bound`: the patch projection,
    `depth` blocks and the final (or pooling) norm; for the decoder's predictions also the
    decoder embedding, its `decoder_depth` blocks, its norm and the prediction head."""
    encoder = 1 + depth + 1
    return encoder if decoder_depth is None else encoder + 1 + decoder_depth + 2


def mse_bound(loss: torch.Tensor, difference_bound: float, count: int) -> float:
    """The most a mean of `count` squared differences (prediction - target) may move by rounding
    when each difference is off by at most `difference_bound`: |mean(a^2) - mean(b^2)| =
    |mean((a - b)(a + b))| <= d * (2 * sqrt(loss) + d) (Cauchy-Schwarz), plus the rounding of the
    mean itself, a sum of `count` non-negative terms: count * eps of its size."""
    loss, d = abs(float(loss)), difference_bound
    return d * (2 * loss ** 0.5 + d) + EPS * count * loss


def cast_tolerances(reference: torch.Tensor, casts: int = 2, dtype: torch.dtype = torch.bfloat16) -> dict:
    """assert_close tolerances for two paths that compute the same float32 values up to float32
    rounding (~1e-7, kernel-dependent) and then round to `dtype` (autocast) at `casts` places,
    e.g. a matmul's inputs and its output. Near a rounding boundary a float32 difference can land
    a value one `dtype` step apart: relative eps per cast (rtol); a flipped input element moves
    what it feeds by eps of its product, at most eps of the reference's largest value (atol)."""
    eps = torch.finfo(dtype).eps
    return {"rtol": casts * eps, "atol": eps * reference.detach().abs().max().item()}


def longest_sum(module: torch.nn.Module, tokens: int = 0) -> int:
    """The longest sum in a module's forward, for `rounding_bound`'s terms: a linear's inputs, a
    convolution's window (input channels x kernel), a norm's width, or `tokens` (attention's and
    pooling's sums over the sequence)."""
    sums = [tokens]
    for m in module.modules():
        if isinstance(m, torch.nn.Linear):
            sums.append(m.in_features)
        elif isinstance(m, torch.nn.modules.conv._ConvNd):
            sums.append(m.in_channels // m.groups * int(torch.tensor(m.kernel_size).prod()))
        elif isinstance(m, torch.nn.LayerNorm):
            sums.append(int(torch.tensor(m.normalized_shape).prod()))
    return max(sums)


def transformer_stages(module: torch.nn.Module) -> int:
    """`rounding_bound`'s stages of a model's forward: each transformer block (a module with an
    `attn` and an `mlp`), plus a tokenizer's projection, a final norm and a head."""
    return 3 + sum(1 for m in module.modules() if hasattr(m, "attn") and hasattr(m, "mlp"))


def infonce_bound(scale: float, terms: int, batch: int, stages: int = 3) -> float:
    """float32 rounding bound of an InfoNCE loss with logits `scale` x cosine: the cosines (pooling,
    normalisation and the dot product: `stages` sums of at most `terms` products, of size at most
    1) are off by at most stages * terms * eps, the logits by `scale` times that; a log-softmax
    moves by at most twice its logits' largest move; the means over `batch` rows add batch * eps
    of the loss, which is at most log(batch) + 2 * scale."""
    logits = EPS * stages * terms * scale
    return 2 * logits + EPS * batch * (math.log(batch) + 2 * scale)
