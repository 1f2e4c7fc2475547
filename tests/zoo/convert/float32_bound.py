"""A bound on how far two float32 evaluations of the same network may differ by rounding alone."""

import torch

EPS = torch.finfo(torch.float32).eps


def rounding_bound(reference: torch.Tensor, stages: int, terms: int) -> float:
    """The most two float32 evaluations of one function may differ when they differ only in
    rounding (summation order, fused kernels, the CPU's instruction set: AVX2, AVX-512, AMX).

    Each of `stages` successive stages (a patch projection, a transformer block, a pooling
    norm) adds sums of at most `terms` products; the standard a-priori bound on such a sum is
    terms * eps of its size, taken here at the reference's largest magnitude. The bound is not
    a margin fitted to one machine: it grows with the quantities, and dropping or misplacing a
    tensor moves outputs by their own size (~0.1 to 1 here), far above it.
    """
    return EPS * stages * terms * reference.abs().max().item()
