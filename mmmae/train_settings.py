"""pretrain's settings checked before anything is built or written: one message naming the binding,
its value, where the config set it and what is allowed; and the ones the training loop runs by."""

import math
from dataclasses import dataclass

from mmmae.config import binding_error

AT_LEAST_ONE = ("steps", "batch_size", "grad_accum", "save_every", "log_every", "viz_every", "keep_checkpoints",
                "prefetch_factor")
AT_LEAST_ZERO = ("warmup_steps", "num_workers", "seed")
MIXED_PRECISION = ("no", "fp16", "bf16", "fp8")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) and math.isfinite(value)


def _problem(name: str, value) -> str | None:
    """What is wrong with pretrain.`name` = `value`, or None."""
    if name in AT_LEAST_ONE and not (_is_int(value) and value >= 1):
        return "must be a whole number of at least 1"
    if name in AT_LEAST_ZERO and not (_is_int(value) and value >= 0):
        return "must be a whole number of at least 0"
    if name == "base_lr" and not (_is_number(value) and value > 0):
        return "must be a number above 0 (e.g. 1.5e-4)"
    if name == "min_lr_ratio" and not (_is_number(value) and 0 <= value <= 1):
        return "must be a number from 0 to 1 (the final lr as a share of the peak)"
    if name == "weight_decay" and not (_is_number(value) and value >= 0):
        return "must be a number of at least 0"
    if name == "clip_grad" and not (value is None or (_is_number(value) and value > 0)):
        return "must be None (no clipping) or a number above 0"
    if name == "betas" and not (isinstance(value, (list, tuple)) and len(value) == 2
                                and all(_is_number(b) and 0 <= b < 1 for b in value)):
        return "must be two numbers from 0 up to (not including) 1, e.g. (0.9, 0.95)"
    if name == "mixed_precision" and value not in MIXED_PRECISION:
        return f"must be one of {', '.join(repr(m) for m in MIXED_PRECISION)}"
    return None


def check_settings(settings: dict) -> None:
    """ConfigError for the first pretrain setting out of range (settings: argument name -> value)."""
    for name, value in settings.items():
        if problem := _problem(name, value):
            raise binding_error(f"pretrain.{name} = {value!r}: {problem}", rf"([\w/]+/)?(mmmae\.)?pretrain\.{name}\s*=")


@dataclass(frozen=True)
class LoopSettings:
    """What train_loop runs by, as pretrain is bound: steps, log_every, save_every and viz_every count
    optimizer steps; seed draws the masks; global_batch = samples per optimizer step over all processes;
    batch_sizes = the per-process batch of each optimizer step when it varies (AdaptiveBatch), else ()."""

    steps: int
    seed: int
    clip_grad: float | None
    log_every: int
    save_every: int
    keep_checkpoints: int
    viz_every: int
    global_batch: int
    batch_sizes: tuple[int, ...] = ()

    def global_batch_at(self, step: int) -> int:
        """Samples of optimizer step `step` (0-based) over all processes."""
        if not self.batch_sizes:
            return self.global_batch
        return self.global_batch * self.batch_sizes[step] // self.batch_sizes[0]
