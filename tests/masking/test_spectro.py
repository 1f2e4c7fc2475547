"""Spectrogram maskers: counts, complete index sets, whole time steps / bands, product sets, seeding."""

import pytest
import torch

from mmmae.masking.rng import MaskRNG
from mmmae.masking.spectro import FrequencyMasking, TimeFrequencyMasking, TimeMasking
from mmmae.types import Tokens

GRID = (64, 8)  # AudioMAE: 1024 frames x 128 mel bins in 16x16 patches -> 512 tokens
N = 512


def tokens(batch: int = 4, grid: tuple[int, ...] = GRID) -> Tokens:
    return Tokens(embed=torch.zeros(batch, torch.Size(grid).numel(), 4), target=None, grid=grid)


def plan_for(masker, seed: int = 0, batch: int = 4, grid=GRID):
    return masker(tokens(batch, grid), {}, MaskRNG.seeded(seed))


MASKERS = [TimeMasking(0.75), FrequencyMasking(0.5), TimeFrequencyMasking(0.2, 0.2)]


@pytest.mark.parametrize(
    "masker, keep",
    [
        (TimeMasking(0.75), 16 * 8),  # hide int(0.75 * 64) = 48 steps
        (TimeMasking(0.3), 45 * 8),  # hide int(19.2) = 19 steps
        (FrequencyMasking(0.5), 64 * 4),
        (FrequencyMasking(0.8), 64 * 2),  # hide int(6.4) = 6 bands
        (TimeFrequencyMasking(0.2, 0.2), 51 * 6),  # AudioMAE keeps int(64 * 0.8) steps, int(8 * 0.8) bands
        (TimeFrequencyMasking(0.5, 0.3), 32 * 5),
    ],
)
def test_exact_counts(masker, keep):
    plan = plan_for(masker)
    assert plan.keep.shape == (4, keep) and plan.predict.shape == (4, N - keep)


@pytest.mark.parametrize("masker", MASKERS)
def test_keep_and_predict_are_sorted_disjoint_and_complete(masker):
    plan = plan_for(masker)
    for keep, predict in zip(plan.keep, plan.predict):
        assert torch.equal(keep, keep.sort().values) and torch.equal(predict, predict.sort().values)
        assert torch.equal(torch.cat([keep, predict]).sort().values, torch.arange(N))


def test_time_masking_hides_whole_time_steps():
    plan = plan_for(TimeMasking(0.75))
    for keep, predict in zip(plan.keep, plan.predict):
        kept, hidden = torch.bincount(keep // 8, minlength=64), torch.bincount(predict // 8, minlength=64)
        assert set(kept.tolist()) == {0, 8} and (kept > 0).sum() == 16
        assert torch.equal(kept + hidden, torch.full((64,), 8))


def test_frequency_masking_hides_whole_bands():
    plan = plan_for(FrequencyMasking(0.75))
    for keep, predict in zip(plan.keep, plan.predict):
        kept, hidden = torch.bincount(keep % 8, minlength=8), torch.bincount(predict % 8, minlength=8)
        assert set(kept.tolist()) == {0, 64} and (kept > 0).sum() == 2
        assert torch.equal(kept + hidden, torch.full((8,), 64))


def test_time_frequency_keep_set_is_a_product_and_predict_their_union():
    plan = plan_for(TimeFrequencyMasking(0.2, 0.2))
    for keep, predict in zip(plan.keep, plan.predict):
        steps, bands = (keep // 8).unique(), (keep % 8).unique()
        assert len(steps) == 51 and len(bands) == 6
        assert torch.equal(keep, (steps[:, None] * 8 + bands[None, :]).flatten())
        # every predicted token lies in a hidden time step or a hidden band
        assert (~torch.isin(predict // 8, steps) | ~torch.isin(predict % 8, bands)).all()


@pytest.mark.parametrize("masker", MASKERS)
def test_seeded_masks_repeat_and_differ_across_seeds_and_samples(masker):
    plan = plan_for(masker, seed=7)
    assert torch.equal(plan.keep, plan_for(masker, seed=7).keep)
    assert torch.equal(plan.predict, plan_for(masker, seed=7).predict)
    assert not torch.equal(plan.keep, plan_for(masker, seed=8).keep)
    assert len({tuple(k.tolist()) for k in plan.keep}) > 1, "samples in a batch get different masks"


@pytest.mark.parametrize("masker", MASKERS)
def test_each_process_gets_its_rows_of_the_global_masks(masker):
    whole = masker(tokens(4), {}, MaskRNG.seeded(3))
    parts = [masker(tokens(2), {}, MaskRNG.seeded(3, rank=r, world_size=2)) for r in range(2)]
    assert torch.equal(torch.cat([p.keep for p in parts]), whole.keep)
    assert torch.equal(torch.cat([p.predict for p in parts]), whole.predict)


@pytest.mark.parametrize("masker", MASKERS)
def test_grid_that_is_not_time_by_frequency_is_refused(masker):
    with pytest.raises(ValueError, match=rf"{type(masker).__name__} needs a 2-D .* got grid \(2, 4, 4\)"):
        plan_for(masker, grid=(2, 4, 4))


@pytest.mark.parametrize("cls", [TimeMasking, FrequencyMasking])
@pytest.mark.parametrize("ratio", [0.0, 1.0, -0.1, 1.5])
def test_ratio_outside_open_interval_fails_at_config_time(cls, ratio):
    with pytest.raises(ValueError, match=rf"{cls.__name__}\.ratio = {ratio}"):
        cls(ratio)


@pytest.mark.parametrize("kwargs, binding", [({"time_ratio": 1.0}, "time_ratio"), ({"freq_ratio": 0.0}, "freq_ratio")])
def test_time_frequency_ratios_fail_at_config_time_naming_the_binding(kwargs, binding):
    with pytest.raises(ValueError, match=rf"TimeFrequencyMasking\.{binding} = "):
        TimeFrequencyMasking(**kwargs)


@pytest.mark.parametrize(
    "masker, message",
    [
        (FrequencyMasking(0.1), r"FrequencyMasking\.ratio = 0\.1 masks 0 of 8"),
        (TimeFrequencyMasking(0.2, 0.95), r"TimeFrequencyMasking\.freq_ratio = 0\.95 masks 8 of 8 frequency bands"),
    ],
)
def test_ratio_that_hides_nothing_or_everything_names_the_counts(masker, message):
    with pytest.raises(ValueError, match=message):
        plan_for(masker)
