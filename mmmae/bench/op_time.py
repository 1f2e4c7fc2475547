"""Where a step's time goes: torch.profiler's self time of each op, summed by op family."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.profiler import ProfilerActivity, profile

from mmmae.bench.machine import synchronize

FAMILIES = ("matmul", "attention", "convolution", "optimizer", "other")
MATMULS = frozenset({"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::matmul", "aten::linear"})


def op_family(name: str) -> str:
    """The family of a profiler op name, one of FAMILIES."""
    lowered = name.lower()
    if name in MATMULS:
        return "matmul"
    if "attention" in lowered:
        return "attention"
    if "conv" in lowered:
        return "convolution"
    if "adam" in lowered or "sgd" in lowered:
        return "optimizer"
    return "other"


def op_time(step: Callable[[], None], device: torch.device, repeats: int = 3) -> dict[str, float]:
    """Seconds per call of `step` by family (FAMILIES): the self time of every op it runs, CPU
    time on a CPU and kernel time on CUDA, averaged over `repeats` profiled calls."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    seconds = dict.fromkeys(FAMILIES, 0.0)
    for _ in range(repeats):
        with profile(activities=activities) as profiler:
            step()
            synchronize(device)
        for event in profiler.key_averages():
            micros = event.self_device_time_total if device.type == "cuda" else event.self_cpu_time_total
            seconds[op_family(event.key)] += micros / 1e6 / repeats
    return seconds
