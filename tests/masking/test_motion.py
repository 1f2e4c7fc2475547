"""MGMAE masking: exact per-slice counts, seeding, errors, and the visible set following the motion."""

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch.utils.data import default_collate

from mmmae.data.moving_digits.dataset import MovingDigits
from mmmae.masking.motion import MotionGuidedMasking, gaussian_map
from mmmae.masking.rng import MaskRNG
from mmmae.types import Tokens


def tokens(batch: int, grid: tuple[int, int, int]) -> Tokens:
    return Tokens(embed=torch.zeros(batch, grid[0] * grid[1] * grid[2], 1), target=None, grid=grid)


class FixedNoise:
    """A MaskRNG stand-in whose draw is given: the lowest noise picks the Gaussian centres."""

    def __init__(self, noise: torch.Tensor):
        self.noise = noise

    def rand(self, batch: int, *shape: int) -> torch.Tensor:
        assert self.noise.shape == (batch, *shape)
        return self.noise


def centres_at(patches: torch.Tensor, space: int) -> FixedNoise:
    """Noise that puts the single Gaussian of each sample at patch id patches[b]."""
    noise = torch.ones(len(patches), space)
    noise[torch.arange(len(patches)), patches] = 0.0
    return FixedNoise(noise)


@st.composite
def setups(draw):
    tubelet, patch = draw(st.sampled_from([1, 2])), draw(st.sampled_from([2, 4]))
    grid = (draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    assume(grid[0] * tubelet >= 2)
    space = grid[1] * grid[2]
    ratio = draw(st.floats(0.05, 0.95))
    assume(0 < int(ratio * space) < space)
    frames, height, width = grid[0] * tubelet, grid[1] * patch, grid[2] * patch
    flow = torch.randn(3, 2, frames, height, width, generator=torch.Generator().manual_seed(draw(st.integers(0, 99))))
    base_frame = draw(st.sampled_from(["first", "middle", "last"]))
    hole_filling = draw(st.booleans())
    masker = MotionGuidedMasking(ratio, tubelet=tubelet, patch=patch, base_frame=base_frame, hole_filling=hole_filling)
    return masker, grid, {"flow": 3 * flow}, space - int(ratio * space)


@settings(max_examples=25, deadline=None)
@given(setup=setups(), seed=st.integers(0, 2**31))
def test_each_time_slice_keeps_exactly_the_videomae_count_and_the_sets_partition_the_tokens(setup, seed):
    masker, grid, batch, num_vis = setup
    plan = masker(tokens(3, grid), batch, MaskRNG.seeded(seed))
    space, total = grid[1] * grid[2], grid[0] * grid[1] * grid[2]
    assert plan.keep.shape == (3, grid[0] * num_vis) and plan.predict.shape == (3, total - grid[0] * num_vis)
    for keep, predict in zip(plan.keep, plan.predict):
        assert torch.equal(keep, keep.sort().values) and torch.equal(predict, predict.sort().values)
        assert torch.equal(torch.cat([keep, predict]).sort().values, torch.arange(total))
        assert torch.equal(torch.bincount(keep // space, minlength=grid[0]), torch.full((grid[0],), num_vis))


@settings(max_examples=10, deadline=None)
@given(setup=setups(), seed=st.integers(0, 2**31))
def test_same_seed_same_plan_and_processes_get_their_rows_of_the_global_draw(setup, seed):
    masker, grid, batch, _ = setup
    whole = masker(tokens(3, grid), batch, MaskRNG.seeded(seed))
    assert torch.equal(whole.keep, masker(tokens(3, grid), batch, MaskRNG.seeded(seed)).keep)
    halves = [masker(tokens(1, grid), {"flow": batch["flow"][r : r + 1]}, MaskRNG.seeded(seed, rank=r, world_size=3))
              for r in range(3)]
    assert torch.equal(torch.cat([h.keep for h in halves]), whole.keep)


@pytest.mark.parametrize("ratio", [0.0, 1.0, -0.1, 1.5])
def test_ratio_outside_open_interval_fails_at_construction(ratio):
    with pytest.raises(ValueError, match=rf"MotionGuidedMasking\.ratio = {ratio}"):
        MotionGuidedMasking(ratio)


def test_bad_settings_fail_at_construction_and_too_small_a_ratio_at_the_first_call():
    with pytest.raises(ValueError, match=r"MotionGuidedMasking\.base_frame = 'random'"):
        MotionGuidedMasking(base_frame="random")
    with pytest.raises(ValueError, match=r"MotionGuidedMasking\.sigma = 0"):
        MotionGuidedMasking(sigma=0)
    batch = {"flow": torch.zeros(1, 2, 4, 8, 8)}
    with pytest.raises(ValueError, match=r"MotionGuidedMasking\.ratio = 0\.1 masks 0 of 4 patches per time slice"):
        MotionGuidedMasking(0.1, patch=4)(tokens(1, (2, 2, 2)), batch, MaskRNG.seeded(0))


def test_missing_flow_channel_names_the_channel_and_the_estimator():
    with pytest.raises(KeyError, match=r"GroundTruthFlow\(key='flow'\) needs batch\['flow'\].*'video'"):
        MotionGuidedMasking(patch=4)(tokens(1, (2, 2, 2)), {"video": torch.zeros(1, 3, 4, 8, 8)}, MaskRNG.seeded(0))


def test_patch_that_disagrees_with_the_tokenizer_names_the_bindings():
    batch = {"flow": torch.zeros(2, 2, 4, 16, 16)}  # micro geometry: 4 frames 16x16, tokenized with patch 4
    with pytest.raises(ValueError, match=r"MotionGuidedMasking\.tubelet = 2 and MotionGuidedMasking\.patch = 16"):
        MotionGuidedMasking()(tokens(2, (2, 4, 4)), batch, MaskRNG.seeded(0))


def translating_square(step: tuple[int, int], frames: int = 8, size: int = 64, side: int = 24, base_corner=(16, 24)):
    """A solid square moving by `step` (dx, dy) pixels per frame over a static background, with its
    forward flow as MovingDigits gives it; at frame T // 2 its top-left corner is `base_corner` (x, y)."""
    flow = torch.zeros(1, 2, frames, size, size)
    corners = []
    for t in range(frames):
        x, y = (base_corner[i] + (t - frames // 2) * step[i] for i in range(2))
        assert 0 <= x <= size - side and 0 <= y <= size - side
        flow[0, :, t, y : y + side, x : x + side] = torch.tensor(step, dtype=torch.float)[:, None, None]
        corners.append((x, y))
    return {"flow": flow}, corners


def test_warped_maps_land_where_the_pattern_goes_before_and_after_the_base_frame():
    step, patch = (4, -4), 8
    batch, corners = translating_square(step)
    masker = MotionGuidedMasking(ratio=63.5 / 64, sigma=2.0, tubelet=2, patch=patch)
    centre = 4 * 8 + 3  # patch (row 4, col 3), centre (28, 36) pixels: inside the square at the base frame
    init = gaussian_map(torch.tensor([[centre]]), (8, 8), patch, 2.0)
    flow = masker.flow(batch, backward=[pair >= 4 for pair in range(7)])
    maps = masker.warped_maps(init, flow, base=4)
    for t in range(8):
        shift = (t - 4) * step[0], (t - 4) * step[1]
        expected = torch.roll(init[0, 0], shifts=(shift[1], shift[0]), dims=(0, 1))
        x, y = corners[t]
        torch.testing.assert_close(maps[0, t, y : y + 24, x : x + 24], expected[y : y + 24, x : x + 24])

    plan = masker(tokens(1, (4, 8, 8)), batch, centres_at(torch.tensor([centre]), 64))
    rows, cols = plan.keep[0] % 64 // 8, plan.keep[0] % 8
    # slice s holds frames 2s (Gaussian on a patch centre) and 2s + 1 (on a corner): one patch per slice
    assert cols.tolist() == [1, 2, 3, 4] and rows.tolist() == [6, 5, 4, 3]


def test_visible_patch_follows_the_digits_true_motion_on_moving_digits():
    frames, size, digit, patch, count = 16, 64, 24, 8, 16
    data = MovingDigits(frames=frames, size=size, digit_size=digit, min_speed=1.5, max_speed=3.0)
    batch = default_collate([data[i] for i in range(count)])
    grid, base = (frames // 2, size // patch, size // patch), frames // 2
    # one Gaussian (num_vis = 1) on the base frame's patch whose Gaussian covers most digit pixels
    masker = MotionGuidedMasking(ratio=63.5 / 64, sigma=2.0, tubelet=2, patch=patch)
    every = gaussian_map(torch.arange(64)[:, None], grid[1:], patch, 2.0)[:, 0]
    on_digit = torch.einsum("bhw,khw->bk", batch["digit_mask"][:, base].float(), every)
    plan = masker(tokens(count, grid), batch, centres_at(on_digit.argmax(dim=1), 64))

    visible = plan.keep % 64
    seen = torch.stack([visible % 8, visible // 8], dim=-1).float()  # (B, T', 2) patch (x, y) per time slice
    digit_xy = batch["position"].view(count, grid[0], 2, 2).mean(dim=2) / patch  # per slice, in patches
    moved, truth = seen - seen[:, base // 2, None], digit_xy - digit_xy[:, base // 2, None]
    assert ((moved * truth).sum(dim=-1) >= 0).all(), "the visible patch never moves against the digit"
    follows = torch.nn.functional.cosine_similarity(moved.flatten(1), truth.flatten(1), dim=1) > 0.5
    assert follows.sum() >= 13, f"the visible patch follows the digit in only {int(follows.sum())} of {count} clips"
    tracking, static = (moved - truth).norm(dim=-1).mean(), truth.norm(dim=-1).mean()
    assert tracking < 0.6 * static, f"tracking error {tracking:.2f} patches vs {static:.2f} for a static mask"
