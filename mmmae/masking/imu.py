"""Maskers on the IMU graph's (T', devices) grid, token index t * devices + d.

Random masking over all tokens is RandomMasking; these hide whole devices or time spans.
"""

import gin
import torch

from mmmae.masking.base import check_ratio, keep_after_masking, lift, split_by_noise, tile_over_time
from mmmae.masking.rng import MaskRNG
from mmmae.types import MaskPlan, Tokens


def time_device_grid(owner: str, tokens: Tokens) -> tuple[int, int]:
    """(T', devices), or a ValueError when the grid is not 2-D."""
    if len(tokens.grid) != 2:
        raise ValueError(f"{owner} needs a (T', devices) token grid, got {tokens.grid}")
    return tokens.grid


@gin.configurable(module="mmmae")
class DeviceMasking:
    """Node masking: hide all T' tokens of int(ratio * devices) devices; at least one stays visible."""

    def __init__(self, ratio: float = 0.5):
        self.ratio = check_ratio("DeviceMasking", ratio)

    def __call__(self, tokens: Tokens, batch: dict, rng: MaskRNG) -> MaskPlan:
        steps, devices = time_device_grid("DeviceMasking", tokens)
        num_keep = keep_after_masking("DeviceMasking", self.ratio, devices)
        keep, predict = split_by_noise(rng.rand(tokens.embed.shape[0], devices), num_keep)
        return MaskPlan(keep=tile_over_time(keep, steps, devices), predict=tile_over_time(predict, steps, devices))


@gin.configurable(module="mmmae")
class TimeSpanMasking:
    """Hide int(ratio * T') time steps (all devices) as non-overlapping spans of `span` steps.

    With h hidden steps there are ceil(h / span) spans, the last in time shorter when span does
    not divide h. The spans and the T' - h visible steps are shuffled uniformly as slots, so
    spans may touch but never overlap, and every sample hides exactly h steps.
    """

    def __init__(self, ratio: float = 0.5, span: int = 1):
        self.ratio = check_ratio("TimeSpanMasking", ratio)
        if span < 1:
            raise ValueError(f"TimeSpanMasking.span = {span}: a span is at least one time step")
        self.span = span

    def hidden_steps(self, batch: int, steps: int, visible: int, rng: MaskRNG) -> torch.Tensor:
        """(batch, steps) bool, True on the steps - visible hidden time steps."""
        hidden = steps - visible
        spans = -(-hidden // self.span)
        noise = rng.rand(batch, spans + visible)
        span_slots, _ = split_by_noise(noise, spans)
        span_lengths = torch.full((batch, spans), self.span, device=noise.device)
        span_lengths[:, -1] = hidden - (spans - 1) * self.span
        lengths = torch.ones(batch, spans + visible, dtype=torch.long, device=noise.device)
        lengths = lengths.scatter(1, span_slots, span_lengths)
        is_span = torch.zeros_like(lengths, dtype=torch.bool).scatter(1, span_slots, True)
        time = torch.arange(steps, device=noise.device).expand(batch, -1).contiguous()
        slot_of_step = torch.searchsorted(lengths.cumsum(dim=1), time, right=True)
        return is_span.gather(1, slot_of_step)

    def __call__(self, tokens: Tokens, batch: dict, rng: MaskRNG) -> MaskPlan:
        steps, devices = time_device_grid("TimeSpanMasking", tokens)
        visible = keep_after_masking("TimeSpanMasking", self.ratio, steps)
        hidden = self.hidden_steps(tokens.embed.shape[0], steps, visible, rng)
        order = hidden.long().argsort(dim=1, stable=True)  # visible steps first, each half in time order
        return MaskPlan(keep=lift(order[:, :visible], devices), predict=lift(order[:, visible:], devices))
