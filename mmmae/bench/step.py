"""`mmmae bench step`: pretraining-step throughput, FLOP utilisation and peak memory of mmmae's
VideoMAE against transformers' VideoMAEForPreTraining at the identical configuration, and of
mmmae's variants (dual masking, multimodal packing, attention backends, torch.compile,
activation checkpointing) against their baselines, every pair alternated in one process.

Each contender first takes untimed warm-up steps; then `rounds` rounds time `steps` steps of
every contender, the order reversed every other round so drift falls on both. A ratio is of
median seconds per step, with its spread: the lowest and highest per-round ratio.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from mmmae.bench import STEP_VARIANTS as VARIANTS
from mmmae.bench.contenders import (
    DTYPES,
    Contender,
    Geometry,
    audiovisual_batch,
    audiovisual_config,
    clip,
    mmmae_contender,
    mmmae_variant,
    videomae_pair,
)
from mmmae.bench.machine import matmul_peak, state_bytes, step_flops, step_peak_bytes, step_tensor_bytes, synchronize
from mmmae.bench.op_time import FAMILIES, op_time
from mmmae.nn.attention import xformers_available
from mmmae.zoo.pretrained import build_model

MIB = 2**20


@dataclass
class Timing:
    """Seconds per step of one contender, per round; FLOPs of one step; what one step adds to
    memory (live tensors, and the process footprint) and the state it keeps across steps."""

    name: str
    clips: int
    seconds: list[float] = field(default_factory=list)
    flops: int = 0
    tensor_bytes: int = 0
    step_bytes: int = 0
    state_bytes: int = 0

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


@dataclass
class Comparison:
    """`contender` against `baseline`: speedup = baseline's median s/step / contender's."""

    title: str
    baseline: Timing
    contender: Timing

    @property
    def speedup(self) -> float:
        return self.baseline.median / self.contender.median

    @property
    def spread(self) -> tuple[float, float]:
        rounds = [b / c for b, c in zip(self.baseline.seconds, self.contender.seconds)]
        return min(rounds), max(rounds)


def alternate(contenders: Sequence[Contender], rounds: int, steps: int, warmup: int = 1) -> dict[str, Timing]:
    """Per-round seconds per step of every contender, alternating (see the module docstring)."""
    for contender in contenders:
        for _ in range(warmup):
            contender.step()
    timings = {c.name: Timing(c.name, c.clips) for c in contenders}
    for r in range(rounds):
        for contender in contenders if r % 2 == 0 else contenders[::-1]:
            synchronize(contender.device)
            tic = time.perf_counter()
            for _ in range(steps):
                contender.step()
            synchronize(contender.device)
            timings[contender.name].seconds.append((time.perf_counter() - tic) / steps)
    return timings


def measure_costs(contender: Contender, timing: Timing, repeats: int = 3) -> None:
    """FLOPs of one forward+backward, the step's tensor peak, and its median footprint peak over
    `repeats` steps."""
    timing.flops = step_flops(contender.forward_backward)
    timing.tensor_bytes = step_tensor_bytes(contender.step, contender.model, contender.optimizer)
    timing.step_bytes = int(statistics.median(step_peak_bytes(contender.step, contender.device)
                                              for _ in range(repeats)))
    timing.state_bytes = state_bytes(contender.model, contender.optimizer)


def compare(title: str, baseline: Contender, contender: Contender, rounds: int, steps: int,
            costs: bool = False) -> Comparison:
    timings = alternate([baseline, contender], rounds, steps)
    if costs:
        for c in (baseline, contender):
            measure_costs(c, timings[c.name])
    return Comparison(title, timings[baseline.name], timings[contender.name])


@dataclass
class StepBench:
    """What `mmmae bench step` measured."""

    device: str
    dtype: str
    threads: int
    peak_flops: float
    geometry: Geometry
    comparisons: list[Comparison] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    profiles: dict[str, dict[str, float]] = field(default_factory=dict)  # contender: {op family: s/step}


def bench_step(geometry: Geometry, variants: Sequence[str] = VARIANTS, rounds: int = 5, steps: int = 2,
               device: str = "cpu", dtype: str = "float32", compile_backend: str = "inductor",
               profile: bool = False) -> StepBench:
    """Run the chosen `variants` (see VARIANTS) at `geometry`; every figure is measured here.
    compile_backend: torch.compile's backend for the 'compile' variant. profile: also split
    the step time of transformers' model and mmmae's by op family (mmmae.bench.op_time)."""
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise ValueError(f"unknown variants {sorted(unknown)}; choose from {VARIANTS}")
    dev, kind = torch.device(device), DTYPES[dtype]
    result = StepBench(device, dtype, torch.get_num_threads(), matmul_peak(dev, kind), geometry)
    hf, ours, config = videomae_pair(geometry, dev, kind)
    state = ours.model.state_dict()
    video = {"video": clip(geometry, dev)}
    if "transformers" in variants:
        result.comparisons.append(compare("mmmae / transformers VideoMAEForPreTraining", hf, ours, rounds, steps,
                                          costs=True))
    if profile:
        result.profiles = {c.name: op_time(c.step, dev) for c in (hf, ours)}
    del hf
    if "dual_masking" in variants:
        dual = mmmae_variant("dual masking", config, [
            "video/RunningCellMasking.encoder_masker = @video/TubeMasking()", "video/RunningCellMasking.ratio = 0.5",
            "video/Modality.masker = @video/RunningCellMasking()"], video, dev, kind, state)
        result.comparisons.append(compare("dual masking (decoder ratio 0.5) / decoder sees all", ours, dual,
                                          rounds, steps))
    if "backend" in variants:
        math = mmmae_variant("attention math", config, ["Block.backend = 'math'"], video, dev, kind, state)
        result.comparisons.append(compare("attention sdpa / math", math, ours, rounds, steps))
        if dev.type == "cuda" and xformers_available():
            xformers = mmmae_variant("attention xformers", config, ["Block.backend = 'xformers'"], video, dev, kind,
                                     state)
            result.comparisons.append(compare("attention xformers / sdpa", ours, xformers, rounds, steps))
        elif dev.type == "cuda":
            result.notes.append("attention xformers: not installed (pip install mmmae[xformers]), not compared")
    if "compile" in variants:
        model = build_model(config)
        model.load_state_dict(state)
        compiled = mmmae_contender("torch.compile", torch.compile(model, backend=compile_backend), video, dev, kind)
        tic = time.perf_counter()
        compiled.step()
        result.notes.append(
            f"torch.compile ({compile_backend}): first step (compilation) {time.perf_counter() - tic:.1f} s")
        result.comparisons.append(compare("torch.compile / eager", ours, compiled, rounds, steps))
    if "checkpointing" in variants:
        saving = mmmae_variant("checkpointing", config, [
            "Encoder.checkpointing = True", "video/MaskTokenDecoder.checkpointing = True"], video, dev, kind, state)
        result.comparisons.append(compare("activation checkpointing on / off", ours, saving, rounds, steps,
                                          costs=True))
    del ours
    if "packing" in variants:
        result.comparisons.extend(packing_comparisons(geometry, dev, kind, rounds, steps))
    return result


def packing_comparisons(geometry: Geometry, device: torch.device, dtype: torch.dtype, rounds: int,
                        steps: int) -> list[Comparison]:
    """Video + audio in one packed step against a video-only and an audio-only step: the
    baseline's seconds are the sum of the two single-modality steps of the same round."""
    models = {}
    for modalities in (("video",), ("audio",), ("video", "audio")):
        name = " + ".join(modalities)
        model = build_model(audiovisual_config(geometry, modalities))
        models[name] = mmmae_contender(name, model, audiovisual_batch(geometry, modalities, device), device, dtype)
    timings = alternate(list(models.values()), rounds, steps)
    both = timings["video + audio"]
    summed = Timing("video step + audio step", both.clips,
                    [v + a for v, a in zip(timings["video"].seconds, timings["audio"].seconds)])
    return [Comparison("video+audio packed / (video step + audio step)", summed, both)]


def _timing_line(t: Timing, peak: float) -> str:
    line = f"  {t.name:<28} {t.median:8.3f} s/step {t.clips / t.median:7.2f} clips/s"
    if t.flops:
        achieved = t.flops / t.median
        line += (f"  {t.flops / 1e9:7.1f} GFLOP/step {achieved / 1e9:6.1f} GFLOP/s = {achieved / peak:5.1%} of peak;"
                 f" step memory: tensors +{t.tensor_bytes / MIB:.0f} MiB"
                 f" ({(t.tensor_bytes + t.state_bytes) / MIB:.0f} MiB with parameters and optimizer state),"
                 f" process +{t.step_bytes / MIB:.0f} MiB")
    return line


def _memory_line(c: Comparison) -> str:
    b, o = c.baseline, c.contender
    return (f"  memory: {o.tensor_bytes / b.tensor_bytes:.2f}x the baseline's step tensor peak, "
            f"{(o.tensor_bytes + o.state_bytes) / (b.tensor_bytes + b.state_bytes):.2f}x with parameters and "
            f"optimizer state; process footprint {_ratio(o.step_bytes, b.step_bytes)}")


def _ratio(value: int, baseline: int) -> str:
    return f"{value / baseline:.2f}x" if baseline > 0 else "n/a (the baseline's did not rise)"


def format_step_bench(result: StepBench) -> str:
    g = result.geometry
    lines = [f"device {result.device}, {result.threads} threads, {result.dtype}; matmul peak measured now "
             f"{result.peak_flops / 1e9:.1f} GFLOP/s (square matmuls, mmmae.bench.machine.matmul_peak)",
             f"VideoMAE {g.size} (depth {g.depth}, decoder {g.decoder_depth}), {g.frames}x{g.image}x{g.image}, "
             f"tube {g.ratio}, batch {g.batch}"]
    for c in result.comparisons:
        low, high = c.spread
        lines.append(f"{c.title}: {c.speedup:.2f}x throughput (per round {low:.2f}-{high:.2f}x)")
        if c.baseline.tensor_bytes and c.contender.tensor_bytes:
            lines.append(_memory_line(c))
        lines += [_timing_line(c.baseline, result.peak_flops), _timing_line(c.contender, result.peak_flops)]
    if result.profiles:
        clock = "kernel" if result.device.startswith("cuda") else "CPU"
        lines.append(f"time per step by op family (torch.profiler, self {clock} time; profiling slows the step):")
        for name, seconds in result.profiles.items():
            parts = "  ".join(f"{family} {seconds[family] * 1e3:.0f} ms" for family in FAMILIES)
            lines.append(f"  {name:<14} {parts}  total {sum(seconds.values()) * 1e3:.0f} ms")
    return "\n".join(lines + result.notes)
