"""IMU grid maskers: exact counts, whole devices, contiguous time spans, errors, seeding."""

import pytest
import torch

from mmmae.masking.imu import DeviceMasking, TimeSpanMasking
from mmmae.masking.rng import MaskRNG
from mmmae.types import MaskPlan, Tokens

STEPS, DEVICES = 20, 5


def plan_for(masker, seed: int = 0, batch: int = 8, grid=(STEPS, DEVICES)) -> MaskPlan:
    tokens = Tokens(embed=torch.zeros(batch, STEPS * DEVICES, 4), target=None, grid=grid)
    return masker(tokens, {}, MaskRNG.seeded(seed))


def runs(hidden: list[bool]) -> list[int]:
    """Lengths of the maximal runs of True, in time order."""
    lengths, current = [], 0
    for h in hidden + [False]:
        if h:
            current += 1
        elif current:
            lengths, current = lengths + [current], 0
    return lengths


MASKERS = [DeviceMasking(0.5), DeviceMasking(0.9), TimeSpanMasking(0.5), TimeSpanMasking(0.75, span=4)]


@pytest.mark.parametrize(
    "masker, keep",
    [(DeviceMasking(0.5), 3 * STEPS), (DeviceMasking(0.9), STEPS), (TimeSpanMasking(0.55, span=3), 9 * DEVICES)],
)
def test_exact_counts(masker, keep):
    plan = plan_for(masker)
    assert plan.keep.shape == (8, keep) and plan.predict.shape == (8, STEPS * DEVICES - keep)


@pytest.mark.parametrize("masker", MASKERS)
def test_keep_and_predict_are_sorted_disjoint_and_complete(masker):
    plan = plan_for(masker)
    for keep, predict in zip(plan.keep, plan.predict):
        assert torch.equal(keep, keep.sort().values) and torch.equal(predict, predict.sort().values)
        assert torch.equal(torch.cat([keep, predict]).sort().values, torch.arange(STEPS * DEVICES))


def test_device_masking_hides_whole_devices_and_keeps_one():
    for ratio, hidden in [(0.5, 2), (0.9, 4)]:
        plan = plan_for(DeviceMasking(ratio))
        for sample in plan.predict:
            counts = torch.bincount(sample % DEVICES, minlength=DEVICES)
            assert set(counts.tolist()) == {0, STEPS} and (counts > 0).sum() == hidden
    assert len({tuple(p.tolist()) for p in plan_for(DeviceMasking(0.5)).predict % DEVICES}) > 1


@pytest.mark.parametrize("ratio, span", [(0.55, 3), (0.5, 1), (0.75, 4), (0.3, 7)])
def test_time_spans_hide_all_devices_in_contiguous_spans(ratio, span):
    hidden_steps = int(ratio * STEPS)
    plan = plan_for(TimeSpanMasking(ratio, span=span), batch=32)
    starts_hidden = set()
    for sample in plan.predict:
        counts = torch.bincount(sample // DEVICES, minlength=STEPS)
        assert set(counts.tolist()) == {0, DEVICES}
        hidden = (counts > 0).tolist()
        lengths = runs(hidden)
        assert sum(lengths) == hidden_steps
        # touching spans merge into one run: every run but the last is whole spans, the last ends in the short one
        assert all(length % span == 0 for length in lengths[:-1])
        assert lengths[-1] % span == hidden_steps % span
        starts_hidden.add(hidden.index(True))
    assert len(starts_hidden) > 1, "span positions are random"


def test_span_one_hides_a_uniform_subset_of_steps():
    plan = plan_for(TimeSpanMasking(0.5), batch=256)
    per_step = torch.bincount((plan.predict // DEVICES).flatten(), minlength=STEPS) / DEVICES
    assert per_step.min() > 0.3 * 256 and per_step.max() < 0.7 * 256


@pytest.mark.parametrize("masker", MASKERS)
def test_seeded_masks_repeat_and_differ_across_seeds(masker):
    assert torch.equal(plan_for(masker, seed=3).keep, plan_for(masker, seed=3).keep)
    assert not torch.equal(plan_for(masker, seed=3).keep, plan_for(masker, seed=4).keep)


def test_processes_get_their_rows_of_the_global_draw():
    masker = TimeSpanMasking(0.5, span=3)
    tokens = Tokens(embed=torch.zeros(2, STEPS * DEVICES, 4), target=None, grid=(STEPS, DEVICES))
    parts = [masker(tokens, {}, MaskRNG.seeded(5, rank=r, world_size=2)).keep for r in range(2)]
    assert torch.equal(torch.cat(parts), plan_for(masker, seed=5, batch=4).keep)


@pytest.mark.parametrize("cls", [DeviceMasking, TimeSpanMasking])
@pytest.mark.parametrize("ratio", [0.0, 1.0, 1.5])
def test_bad_ratio_fails_at_construction(cls, ratio):
    with pytest.raises(ValueError, match=rf"{cls.__name__}\.ratio = {ratio}"):
        cls(ratio)


def test_bad_span_grid_and_counts_are_named():
    with pytest.raises(ValueError, match=r"TimeSpanMasking\.span = 0"):
        TimeSpanMasking(0.5, span=0)
    for masker in [DeviceMasking(0.5), TimeSpanMasking(0.5)]:
        with pytest.raises(ValueError, match=r"needs a \(T', devices\) token grid, got \(4, 5, 5\)"):
            plan_for(masker, grid=(4, 5, 5))
    with pytest.raises(ValueError, match=r"DeviceMasking\.ratio = 0\.1 masks 0 of 5"):
        plan_for(DeviceMasking(0.1))
