"""MotionVectorMasking (MGM): exact counts per time slice, seeding, and masking the highest-motion tokens."""

import einops
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmmae.masking.motion_vectors import MotionVectorMasking
from mmmae.masking.rng import MaskRNG
from mmmae.types import Tokens


def tokens(batch: int, grid: tuple[int, int, int]) -> Tokens:
    return Tokens(embed=torch.zeros(batch, grid[0] * grid[1] * grid[2], 4), target=None, grid=grid)


def pixel_map(token_map: torch.Tensor, tubelet: int = 2, patch: int = 4) -> torch.Tensor:
    """(B, T', H', W') per-token values -> the pixel map (B, T, H, W) they are the means of."""
    return einops.repeat(token_map, "b t h w -> b (t u) (h p) (w q)", u=tubelet, p=patch, q=patch)


def masked_per_slice(predict: torch.Tensor, grid: tuple[int, int, int]) -> list[list[set[int]]]:
    """predict (B, Q) -> per sample, per time slice, the masked spatial positions."""
    space = grid[1] * grid[2]
    return [[{int(i) % space for i in row if int(i) // space == t} for t in range(grid[0])] for row in predict]


@settings(max_examples=25, deadline=None)
@given(
    frames=st.integers(1, 3),
    height=st.integers(2, 5),
    width=st.integers(2, 5),
    ratio=st.floats(0.3, 0.9),
    context=st.floats(0.0, 0.5),
    smooth=st.sampled_from([1, 3, 5]),
    seed=st.integers(0, 2**16),
)
def test_exact_counts_disjoint_complete_and_seeded(frames, height, width, ratio, context, smooth, seed):
    grid, batch = (frames, height, width), 3
    space = height * width
    masked = int(ratio * space)
    if masked in (0, space):
        return
    motion = pixel_map(torch.rand(batch, *grid, generator=torch.Generator().manual_seed(seed)))
    masker = MotionVectorMasking(ratio=ratio, smooth=smooth, context=context)
    plan = masker(tokens(batch, grid), {"motion_vectors": motion}, MaskRNG.seeded(seed))

    assert plan.keep.shape == (batch, frames * (space - masked)) and plan.predict.shape == (batch, frames * masked)
    for keep, predict in zip(plan.keep, plan.predict):
        assert torch.equal(keep, keep.sort().values) and torch.equal(predict, predict.sort().values)
        assert torch.equal(torch.cat([keep, predict]).sort().values, torch.arange(frames * space))
    assert all(len(s) == masked for sample in masked_per_slice(plan.predict, grid) for s in sample)
    again = masker(tokens(batch, grid), {"motion_vectors": motion}, MaskRNG.seeded(seed))
    assert torch.equal(plan.keep, again.keep) and torch.equal(plan.predict, again.predict)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), ratio=st.floats(0.2, 0.9))
def test_masks_exactly_the_highest_motion_tokens_without_smoothing(seed, ratio):
    grid = (2, 4, 4)
    values = torch.rand(2, *grid, generator=torch.Generator().manual_seed(seed))  # distinct almost surely
    masker = MotionVectorMasking(ratio=ratio, smooth=1)
    plan = masker(tokens(2, grid), {"motion_vectors": pixel_map(values)}, MaskRNG.seeded(seed))
    masked = int(ratio * 16)
    top = values.flatten(2).topk(masked, dim=-1).indices
    for b, sample in enumerate(masked_per_slice(plan.predict, grid)):
        for t, positions in enumerate(sample):
            assert positions == set(top[b, t].tolist())


@pytest.mark.parametrize("context", [0.0, 0.25])
def test_a_moving_hot_spot_is_masked_in_every_slice(context):
    grid = (3, 6, 6)
    hot = [(1, 1), (2, 3), (4, 4)]  # the moving object's token (h, w) in each time slice
    values = torch.zeros(1, *grid)
    for t, (h, w) in enumerate(hot):
        values[0, t, h, w] = 5.0
    masker = MotionVectorMasking(ratio=0.25, context=context)  # 9 of 36 tokens per slice
    for seed in range(5):
        plan = masker(tokens(1, grid), {"motion_vectors": pixel_map(values)}, MaskRNG.seeded(seed))
        for t, positions in enumerate(masked_per_slice(plan.predict, grid)[0]):
            h, w = hot[t]
            assert h * 6 + w in positions
            blob = {(h + i) * 6 + (w + j) for i in (-1, 0, 1) for j in (-1, 0, 1)}  # the smoothed peak
            assert positions == blob if context == 0.0 else len(positions & blob) >= 7


def test_static_clips_fall_back_to_random_masks():
    grid = (2, 4, 4)
    masker = MotionVectorMasking(ratio=0.5)
    batch = {"motion_vectors": torch.zeros(2, 4, 16, 16)}
    first = masker(tokens(2, grid), batch, MaskRNG.seeded(0)).predict
    assert not torch.equal(first[0], first[1]), "ties are broken at random per sample"
    assert not torch.equal(first, masker(tokens(2, grid), batch, MaskRNG.seeded(1)).predict)


@pytest.mark.parametrize("ratio", [0.0, 1.0, -0.5, 1.5])
def test_ratio_outside_the_unit_interval_fails_at_construction(ratio):
    with pytest.raises(ValueError, match="MotionVectorMasking.ratio"):
        MotionVectorMasking(ratio=ratio)


@pytest.mark.parametrize("bad", [{"smooth": 2}, {"smooth": 0}, {"context": 1.0}, {"context": -0.1}])
def test_bad_smoothing_or_context_fails_at_construction(bad):
    with pytest.raises(ValueError, match=f"MotionVectorMasking.{next(iter(bad))}"):
        MotionVectorMasking(**bad)


def test_ratio_that_masks_nothing_on_the_grid_fails_at_the_first_call():
    with pytest.raises(ValueError, match="MotionVectorMasking.ratio = 0.1 masks 0 of 4"):
        masker = MotionVectorMasking(ratio=0.1)
        masker(tokens(1, (1, 2, 2)), {"motion_vectors": torch.zeros(1, 2, 8, 8)}, MaskRNG.seeded(0))


def test_missing_side_channel_names_the_key_and_the_binding():
    with pytest.raises(KeyError, match=r"MotionVectorMasking needs batch\['mv'\].*WithMotionVectors.*'video'"):
        MotionVectorMasking(key="mv")(tokens(1, (2, 4, 4)), {"video": torch.zeros(1)}, MaskRNG.seeded(0))


def test_patch_binding_must_match_the_map_and_grid():
    batch = {"motion_vectors": torch.zeros(1, 4, 16, 16)}
    MotionVectorMasking(tubelet=2, patch=4)(tokens(1, (2, 4, 4)), batch, MaskRNG.seeded(0))
    with pytest.raises(ValueError, match="MotionVectorMasking.patch = 8"):
        MotionVectorMasking(patch=8)(tokens(1, (2, 4, 4)), batch, MaskRNG.seeded(0))
    with pytest.raises(ValueError, match="MotionVectorMasking.tubelet"):
        MotionVectorMasking()(tokens(1, (3, 4, 4)), batch, MaskRNG.seeded(0))
