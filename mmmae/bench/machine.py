"""What a step costs the machine: its matmul peak, a step's model FLOPs, a step's peak memory.

The peak is measured in the run that uses it (large square matmuls of the step's dtype), the
FLOPs come from torch.utils.flop_counter (matmuls, convolutions and attention; on CPU the
flash-attention kernels torch does not count are counted with torch's own SDPA formulas), and
memory is what the step adds to what was held before it, counted two ways: the peak of live
tensor bytes (torch's MemTracker, on any device; what CUDA's max_memory_allocated counts), and
what the process footprint rose by (CUDA: the caching allocator's reserved memory; CPU: the
resident-set high-water mark, the kernel's VmHWM reset before the step, which includes the C
allocator's freed-but-kept memory).
"""

from __future__ import annotations

import ctypes
import gc
import re
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch.distributed._tools.mem_tracker import MemTracker
from torch.utils import flop_counter

_CPU_FLASH = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
_CPU_FLASH_BACKWARD = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward


def _register_cpu_attention_flops() -> None:
    """Count the CPU flash-attention kernels (torch's FlopCounterMode leaves them out)."""
    if _CPU_FLASH in flop_counter.flop_registry:
        return

    @flop_counter.register_flop_formula(_CPU_FLASH)
    def _forward(query, key, value, *args, out_shape=None, **kwargs) -> int:
        return flop_counter.sdpa_flop_count(query, key, value)

    @flop_counter.register_flop_formula(_CPU_FLASH_BACKWARD)
    def _backward(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
        return flop_counter.sdpa_backward_flop_count(grad_out, query, key, value)


def step_flops(step: Callable[[], None]) -> int:
    """Model FLOPs of one call of `step` (forward and backward; a multiply-add counts 2)."""
    _register_cpu_attention_flops()
    with flop_counter.FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, dtype: torch.dtype = torch.float32, size: int | None = None,
                seconds: float = 2.0) -> float:
    """The best FLOP/s of size x size matmuls of `dtype` on `device` over about `seconds`.
    size: 2048 on a CPU, 8192 on a GPU (where smaller products do not fill the chip); a GPU
    times 10 products between synchronisations, so launch and sync costs do not count."""
    size = size or (8192 if device.type == "cuda" else 2048)
    per_timing = 10 if device.type == "cuda" else 1
    a, b = (torch.randn(size, size, device=device).to(dtype) for _ in range(2))
    out = torch.empty(size, size, device=device, dtype=dtype)
    torch.mm(a, b, out=out)  # warm-up
    best, spent = 0.0, 0.0
    while spent < seconds:
        synchronize(device)
        tic = time.perf_counter()
        for _ in range(per_timing):
            torch.mm(a, b, out=out)
        synchronize(device)
        elapsed = time.perf_counter() - tic
        spent += elapsed
        best = max(best, per_timing * 2 * size**3 / elapsed)
    return best


def _status_kib(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    if match is None:
        raise RuntimeError(f"/proc/self/status has no {field}: peak memory on CPU needs Linux")
    return int(match.group(1))


def _release_freed_memory() -> None:
    """Give memory the allocator holds but no tensor uses back to the system (glibc malloc_trim)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def step_peak_bytes(step: Callable[[], None], device: torch.device) -> int:
    """How far the process's memory footprint rose above its level before one call of `step`, in bytes.

    CUDA: the caching allocator's reserved memory (max_memory_reserved after
    reset_peak_memory_stats, cache emptied first). CPU: the process's resident high-water mark
    (VmHWM, reset through /proc/self/clear_refs) minus its resident size just before the step,
    after freed memory went back to the system."""
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_reserved(device)
        step()
        synchronize(device)
        return torch.cuda.max_memory_reserved(device) - before
    _release_freed_memory()
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_kib("VmRSS")
    step()
    return (_status_kib("VmHWM") - before) * 1024


def _tracked_total(tracker: MemTracker, which: str) -> int:
    return sum(per_device["Total"] for per_device in tracker.get_tracker_snapshot(which).values())


def step_tensor_bytes(step: Callable[[], None], model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """How far the bytes of live tensors rose above their level before one call of `step`:
    MemTracker follows every storage the step's ops allocate until it is freed, with the
    model's parameters, gradients and the optimizer's state."""
    tracker = MemTracker()
    tracker.track_external(model, optimizer)
    with tracker, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Module is None")  # its per-module view, not the totals
        before = _tracked_total(tracker, "current")
        step()
    return _tracked_total(tracker, "peak") - before


def state_bytes(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Bytes of what lives across steps: parameters, buffers and optimizer state."""
    tensors = list(model.parameters()) + list(model.buffers())
    tensors += [v for state in optimizer.state.values() for v in state.values() if torch.is_tensor(v)]
    return sum(t.numel() * t.element_size() for t in tensors)
