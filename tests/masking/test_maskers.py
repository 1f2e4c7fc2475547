"""Masker properties: exact counts, disjoint and complete sets, tubes, frames, seeding (also by hypothesis)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmmae.masking.frame import FrameMasking
from mmmae.masking.random import RandomMasking
from mmmae.masking.rng import MaskRNG
from mmmae.masking.tube import TubeMasking
from mmmae.types import Tokens

GRID = (8, 14, 14)  # VideoMAE: 16 frames, 224^2, 2x16x16 tubelets -> 1568 tokens


def tokens(batch: int = 3, grid: tuple[int, int, int] = GRID) -> Tokens:
    n = grid[0] * grid[1] * grid[2]
    return Tokens(embed=torch.zeros(batch, n, 4), target=None, grid=grid)


def plan_for(masker, seed: int = 0, batch: int = 3, grid=GRID):
    return masker(tokens(batch, grid), {}, MaskRNG.seeded(seed))


@pytest.mark.parametrize(
    "masker, keep",
    [(TubeMasking(0.9), 8 * 20), (RandomMasking(0.9), 156), (FrameMasking(0.5), 4 * 196), (TubeMasking(0.75), 8 * 49)],
)
def test_exact_counts_match_the_reference_codebases(masker, keep):
    plan = plan_for(masker)
    assert plan.keep.shape == (3, keep)
    assert plan.predict.shape == (3, 1568 - keep)


@pytest.mark.parametrize("masker", [TubeMasking(0.9), RandomMasking(0.9), FrameMasking(0.5)])
def test_keep_and_predict_are_sorted_disjoint_and_complete(masker):
    plan = plan_for(masker)
    for keep, predict in zip(plan.keep, plan.predict):
        assert torch.equal(keep, keep.sort().values) and torch.equal(predict, predict.sort().values)
        assert torch.equal(torch.cat([keep, predict]).sort().values, torch.arange(1568))


def test_tube_mask_is_identical_in_every_frame():
    plan = plan_for(TubeMasking(0.9))
    space = 14 * 14
    per_frame = plan.keep.view(3, 8, -1) - torch.arange(8)[None, :, None] * space
    assert (per_frame == per_frame[:, :1]).all()
    assert not torch.equal(per_frame[0, 0], per_frame[1, 0]), "samples in a batch get different tubes"


def test_frame_masking_hides_whole_frames():
    plan = plan_for(FrameMasking(0.5))
    frames_kept = plan.keep // 196
    for sample in frames_kept:
        counts = torch.bincount(sample, minlength=8)
        assert set(counts.tolist()) == {0, 196} and (counts > 0).sum() == 4


@pytest.mark.parametrize("masker", [TubeMasking(0.9), RandomMasking(0.9), FrameMasking(0.5)])
def test_seeded_masks_repeat_and_differ_across_seeds(masker):
    assert torch.equal(plan_for(masker, seed=7).keep, plan_for(masker, seed=7).keep)
    assert not torch.equal(plan_for(masker, seed=7).keep, plan_for(masker, seed=8).keep)


def test_rng_gives_each_process_its_rows_of_the_global_draw():
    whole = MaskRNG.seeded(5).rand(4, 10)
    parts = [MaskRNG.seeded(5, rank=r, world_size=2).rand(2, 10) for r in range(2)]
    assert torch.equal(torch.cat(parts), whole)


@pytest.mark.parametrize("cls", [TubeMasking, RandomMasking, FrameMasking])
@pytest.mark.parametrize("ratio", [0.0, 1.0, -0.1, 1.5])
def test_ratio_outside_open_interval_fails_at_config_time(cls, ratio):
    with pytest.raises(ValueError, match=rf"{cls.__name__}\.ratio = {ratio}"):
        cls(ratio)


def test_ratio_that_leaves_nothing_visible_names_the_counts():
    with pytest.raises(ValueError, match=r"RandomMasking\.ratio = 0\.9 masks 8 of 8"):
        plan_for(RandomMasking(0.9), grid=(2, 2, 2))


@settings(max_examples=40, deadline=None)
@given(kind=st.sampled_from(["tube", "random", "frame"]), grid=st.tuples(*[st.integers(1, 6)] * 3),
       ratio=st.floats(0.05, 0.95), seed=st.integers(0, 2**16), batch=st.integers(1, 4))
def test_basic_masker_properties(kind, grid, ratio, seed, batch):
    """Exact counts, sorted disjoint complete sets, determinism, and each masker's shape."""
    frames, height, width = grid
    n, space = frames * height * width, height * width
    masker = {"tube": TubeMasking, "random": RandomMasking, "frame": FrameMasking}[kind](ratio)
    keep_count = {"tube": frames * (space - int(ratio * space)), "random": int(n * (1 - ratio)),
                  "frame": (frames - int(ratio * frames)) * space}[kind]
    if not 0 < keep_count < n:
        with pytest.raises(ValueError, match="at least one must stay visible and one must be masked"):
            plan_for(masker, seed, batch, grid)
        return
    plan = plan_for(masker, seed, batch, grid)
    assert plan.keep.shape == (batch, keep_count) and plan.predict.shape == (batch, n - keep_count)
    for keep, predict in zip(plan.keep, plan.predict):
        assert torch.equal(keep, keep.sort().values) and torch.equal(predict, predict.sort().values)
        assert torch.equal(torch.cat([keep, predict]).sort().values, torch.arange(n))
        visible = torch.zeros(n, dtype=torch.bool)
        visible[keep] = True
        by_frame = visible.view(frames, space)
        if kind == "tube":
            assert (by_frame == by_frame[:1]).all()
        if kind == "frame":
            assert (by_frame.all(dim=1) | ~by_frame.any(dim=1)).all()
    again = plan_for(masker, seed, batch, grid)
    assert torch.equal(again.keep, plan.keep) and torch.equal(again.predict, plan.predict)
