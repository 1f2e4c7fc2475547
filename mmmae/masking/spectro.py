"""Structured masking of a spectrogram's (time, frequency) token grid (T', F').

Token t * F' + f is time step t, frequency band f (AudioTokenizer's order). Unstructured
masking of spectrograms (AudioMAE pretraining, CAV-MAE) is RandomMasking.
"""

import gin
import torch

from mmmae.masking.base import check_ratio, keep_after_masking, keep_of_remainder, lift, split_by_noise, tile_over_time
from mmmae.masking.rng import MaskRNG
from mmmae.types import MaskPlan, Tokens


def time_freq_grid(owner: str, tokens: Tokens) -> tuple[int, int]:
    """(T', F') of a 2-D token grid, else a ValueError naming the masker and the grid."""
    if len(tokens.grid) != 2:
        raise ValueError(f"{owner} needs a 2-D (time, frequency) token grid, got grid {tuple(tokens.grid)}")
    return tokens.grid


@gin.configurable(module="mmmae")
class TimeMasking:
    """Hide all F' tokens of int(ratio * T') randomly chosen time steps (TVLT's audio frame masking)."""

    def __init__(self, ratio: float = 0.75):
        self.ratio = check_ratio("TimeMasking", ratio)

    def __call__(self, tokens: Tokens, batch: dict, rng: MaskRNG) -> MaskPlan:
        steps, bands = time_freq_grid("TimeMasking", tokens)
        num_keep = keep_after_masking("TimeMasking", self.ratio, steps)
        keep, predict = split_by_noise(rng.rand(tokens.embed.shape[0], steps), num_keep)
        return MaskPlan(keep=lift(keep, bands), predict=lift(predict, bands))


@gin.configurable(module="mmmae")
class FrequencyMasking:
    """Hide all T' tokens of int(ratio * F') randomly chosen frequency bands (whole rows of the grid)."""

    def __init__(self, ratio: float = 0.75):
        self.ratio = check_ratio("FrequencyMasking", ratio)

    def __call__(self, tokens: Tokens, batch: dict, rng: MaskRNG) -> MaskPlan:
        steps, bands = time_freq_grid("FrequencyMasking", tokens)
        num_keep = keep_after_masking("FrequencyMasking", self.ratio, bands)
        keep, predict = split_by_noise(rng.rand(tokens.embed.shape[0], bands), num_keep)
        return MaskPlan(keep=tile_over_time(keep, steps, bands), predict=tile_over_time(predict, steps, bands))


@gin.configurable(module="mmmae")
class TimeFrequencyMasking:
    """AudioMAE's 2-D masking (`random_masking_2d`): hide time steps and frequency bands.

    Keeps int(T' * (1 - time_ratio)) time steps and int(F' * (1 - freq_ratio)) bands, drawn
    independently per sample (time noise first, then frequency); the encoder sees their product
    set, the decoder predicts the rest (the union of the hidden steps and bands).
    Defaults are AudioMAE's fine-tuning values (mask_t_prob = mask_f_prob = 0.2).
    """

    def __init__(self, time_ratio: float = 0.2, freq_ratio: float = 0.2):
        self.time_ratio = check_ratio("TimeFrequencyMasking", time_ratio, "time_ratio")
        self.freq_ratio = check_ratio("TimeFrequencyMasking", freq_ratio, "freq_ratio")

    def __call__(self, tokens: Tokens, batch: dict, rng: MaskRNG) -> MaskPlan:
        steps, bands = time_freq_grid("TimeFrequencyMasking", tokens)
        batch_size = tokens.embed.shape[0]
        keep_steps = keep_of_remainder("TimeFrequencyMasking", self.time_ratio, steps, "time_ratio", "time steps")
        keep_bands = keep_of_remainder("TimeFrequencyMasking", self.freq_ratio, bands, "freq_ratio", "frequency bands")
        steps_kept, _ = split_by_noise(rng.rand(batch_size, steps), keep_steps)
        bands_kept, _ = split_by_noise(rng.rand(batch_size, bands), keep_bands)
        keep = (steps_kept[:, :, None] * bands + bands_kept[:, None, :]).flatten(1)
        hidden = torch.ones(batch_size, steps * bands, dtype=torch.bool, device=keep.device).scatter_(1, keep, False)
        predict = torch.arange(steps * bands, device=keep.device).expand(batch_size, -1)[hidden].view(batch_size, -1)
        return MaskPlan(keep=keep, predict=predict)
