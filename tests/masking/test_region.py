"""Region-guided masking (MARLIN fasking): exact counts, seeding, checks, and the region masked first."""

import pytest
import torch
from einops import rearrange
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import default_collate

from mmmae.data.moving_digits.dataset import MovingDigits
from mmmae.masking.random import RandomMasking
from mmmae.masking.region import RegionGuidedMasking
from mmmae.masking.rng import MaskRNG
from mmmae.types import Tokens

PATCH, TUBELET = 8, 2
GRID = (4, 4, 4)  # MovingDigits frames=8, size=32 as 2x8x8 tubelets
SPACE = GRID[1] * GRID[2]


@pytest.fixture(scope="module")
def digits() -> dict:
    dataset = MovingDigits(num_samples=16, frames=8, size=32, digit_size=16)
    return default_collate([dataset[i] for i in range(16)])


def tokens(batch: int, grid=GRID) -> Tokens:
    return Tokens(embed=torch.zeros(batch, grid[0] * grid[1] * grid[2], 2), target=None, grid=grid)


def touches(region: torch.Tensor, label: int, patch: int = PATCH, tubelet: int = TUBELET) -> torch.Tensor:
    """(B, N) bool: tokens whose slice's first frame has a pixel of `label` in their patch."""
    hit = region[:, ::tubelet] == label
    return rearrange(hit, "b t (h p) (w q) -> b (t h w) (p q)", p=patch, q=patch).any(-1)


def only(region: torch.Tensor, label: int) -> torch.Tensor:
    """(B, N) bool: tokens whose patch (slice's first frame) holds nothing but `label`."""
    hit = region[:, ::TUBELET] == label
    return rearrange(hit, "b t (h p) (w q) -> b (t h w) (p q)", p=PATCH, q=PATCH).all(-1)


def visible(plan, num_tokens: int) -> torch.Tensor:
    return torch.zeros(plan.keep.shape[0], num_tokens, dtype=torch.bool).scatter(1, plan.keep, True)


def masked_share(region_tokens: torch.Tensor, plan) -> float:
    """Fraction of the region's tokens that the plan masks."""
    shown = visible(plan, region_tokens.shape[1])
    return ((region_tokens & ~shown).sum() / region_tokens.sum()).item()


@st.composite
def region_batches(draw):
    """A random label map (B, T, H, W), blocky so that some patches hold one label only, with its
    grid, ratio, number of labels, order and showable."""
    batch, frames, height, width = (draw(st.integers(1, n)) for n in (3, 3, 4, 4))
    num_labels = draw(st.integers(2, 5))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    shape = (batch, frames * TUBELET, 2 * height, 2 * width)  # half-patch blocks
    coarse = torch.randint(num_labels, shape, generator=generator)[..., ::2, ::2]
    coarse = coarse.repeat_interleave(2, -1).repeat_interleave(2, -2)
    fine = torch.randint(num_labels, shape, generator=generator)
    blocks = torch.where(torch.rand(shape, generator=generator) < 0.3, fine, coarse)
    region = blocks.repeat_interleave(PATCH // 2, -1).repeat_interleave(PATCH // 2, -2)
    return region, (frames, height, width), num_labels, draw(st.floats(0.3, 0.8)), draw(st.sampled_from(
        ["random", "fixed", "reversed"])), draw(st.sampled_from(["any", "all"]))


@settings(max_examples=25, deadline=None)
@given(region_batches(), st.integers(0, 1000))
def test_exact_counts_sorted_disjoint_complete_and_seeded(case, seed):
    region, grid, num_labels, ratio, order, showable = case
    space = grid[1] * grid[2]
    if not 0 < space - int(ratio * space) < space:
        return
    masker = RegionGuidedMasking(ratio, key="parsing", order=order, tubelet=TUBELET, patch=PATCH,
                                 num_labels=num_labels, showable=showable)
    plan = masker(tokens(region.shape[0], grid), {"parsing": region}, MaskRNG.seeded(seed))
    num_vis, n = space - int(ratio * space), grid[0] * space
    assert plan.keep.shape == (region.shape[0], grid[0] * num_vis)
    assert plan.predict.shape == (region.shape[0], n - grid[0] * num_vis)
    for keep, predict in zip(plan.keep, plan.predict):
        assert torch.equal(keep, keep.sort().values) and torch.equal(predict, predict.sort().values)
        assert torch.equal(torch.cat([keep, predict]).sort().values, torch.arange(n))
        assert torch.equal(torch.bincount(keep // space, minlength=grid[0]), torch.full((grid[0],), num_vis))
    again = masker(tokens(region.shape[0], grid), {"parsing": region}, MaskRNG.seeded(seed))
    assert torch.equal(plan.keep, again.keep)


@settings(max_examples=25, deadline=None)
@given(region_batches(), st.integers(0, 1000))
def test_patches_of_the_first_label_are_shown_while_they_suffice(case, seed):
    region, grid, num_labels, ratio, _, showable = case
    space = grid[1] * grid[2]
    num_vis = space - int(ratio * space)
    if not 0 < num_vis < space:
        return
    masker = RegionGuidedMasking(ratio, key="parsing", show_first=(0,), tubelet=TUBELET, patch=PATCH,
                                 num_labels=num_labels, showable=showable)
    plan = masker(tokens(region.shape[0], grid), {"parsing": region}, MaskRNG.seeded(seed))
    first = touches(region, 0) if showable == "any" else only(region, 0)
    shown = visible(plan, first.shape[1])
    enough = rearrange(first, "b (t s) -> b t s", s=space).sum(-1) >= num_vis  # (B, T')
    shown_outside = rearrange(shown & ~first, "b (t s) -> b t s", s=space).any(-1)
    assert not shown_outside[enough].any()


def test_digit_is_masked_first_and_more_than_under_random_masking(digits):
    masker = RegionGuidedMasking(0.75, tubelet=TUBELET, patch=PATCH, showable="all")
    digit = touches(digits["digit_mask"], 1)
    background_only = only(digits["digit_mask"], 0)
    assert (rearrange(background_only, "b (t s) -> b t s", s=SPACE).sum(-1) >= SPACE // 4).all()
    region = masked_share(digit, masker(tokens(16), digits, MaskRNG.seeded(0)))
    random = masked_share(digit, RandomMasking(0.75)(tokens(16), digits, MaskRNG.seeded(0)))
    assert region == 1.0
    assert random < 0.85


def test_marlin_max_pool_masks_a_blob_but_not_thin_strokes(digits):
    """'any' (MARLIN) shows a patch as soon as it touches the background: a blob's interior is
    masked, but every patch of a thin digit also touches the background."""
    region = torch.zeros(4, 8, 32, 32, dtype=torch.bool)
    region[:, :, 4:28, 4:28] = True  # interior patches (1..2, 1..2) hold nothing but the blob
    masker = RegionGuidedMasking(0.75, tubelet=TUBELET, patch=PATCH, showable="any")
    blob_only = only(region, 1)
    assert masked_share(blob_only, masker(tokens(4), {"digit_mask": region}, MaskRNG.seeded(0))) == 1.0
    digit = touches(digits["digit_mask"], 1)
    assert masked_share(digit, masker(tokens(16), digits, MaskRNG.seeded(0))) < 0.9


@pytest.mark.parametrize("kwargs", [dict(order="reversed"), dict(show_first=(1,), order="fixed")])
def test_reversed_queue_or_digit_first_shows_the_digit(digits, kwargs):
    masker = RegionGuidedMasking(0.75, tubelet=TUBELET, patch=PATCH, showable="any", **kwargs)
    plan = masker(tokens(16), digits, MaskRNG.seeded(0))
    digit = touches(digits["digit_mask"], 1)
    shown = visible(plan, digit.shape[1])
    enough = rearrange(digit, "b (t s) -> b t s", s=SPACE).sum(-1) >= SPACE // 4
    assert enough.float().mean() > 0.5
    assert not rearrange(shown & ~digit, "b (t s) -> b t s", s=SPACE).any(-1)[enough].any()
    random = masked_share(digit, RandomMasking(0.75)(tokens(16), digits, MaskRNG.seeded(0)))
    assert masked_share(digit, plan) < random - 0.1


def test_random_queue_differs_per_sample_and_fixed_does_not_draw():
    region = torch.arange(4).repeat_interleave(8).view(1, 1, 1, 32).expand(64, 2, 32, 32)  # 4 label columns
    masker = RegionGuidedMasking(0.75, key="r", show_first=(), tubelet=2, patch=8, num_labels=4)
    plan = masker(tokens(64, (1, 4, 4)), {"r": region}, MaskRNG.seeded(3))
    columns = plan.keep % 4  # each sample shows the column of its first queued label
    assert (columns == columns[:, :1]).all()
    assert len(set(columns[:, 0].tolist())) == 4
    fixed = RegionGuidedMasking(0.75, key="r", show_first=(2,), order="fixed", tubelet=2, patch=8, num_labels=4)
    assert ((fixed(tokens(64, (1, 4, 4)), {"r": region}, MaskRNG.seeded(3)).keep % 4) == 2).all()


def test_missing_region_map_names_the_key_and_binding():
    with pytest.raises(KeyError, match=r"batch\['digit_mask'\] \(RegionGuidedMasking\.key.*keys \['video'\]"):
        RegionGuidedMasking()(tokens(2), {"video": torch.zeros(2)}, MaskRNG.seeded(0))


def test_shape_mismatch_names_patch_and_tubelet_bindings():
    region = torch.zeros(2, 8, 32, 32, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"RegionGuidedMasking\.tubelet = 2 and RegionGuidedMasking\.patch = 16"):
        RegionGuidedMasking()(tokens(2), {"digit_mask": region}, MaskRNG.seeded(0))


def test_labels_outside_the_range_and_float_maps_are_refused():
    masker = RegionGuidedMasking(tubelet=TUBELET, patch=PATCH)
    with pytest.raises(ValueError, match=r"num_labels = 2"):
        masker(tokens(1), {"digit_mask": torch.full((1, 8, 32, 32), 2)}, MaskRNG.seeded(0))
    with pytest.raises(ValueError, match=r"integer or bool"):
        masker(tokens(1), {"digit_mask": torch.zeros(1, 8, 32, 32)}, MaskRNG.seeded(0))


@pytest.mark.parametrize("kwargs, binding", [
    (dict(ratio=1.0), "ratio = 1.0"), (dict(order="sorted"), "order = 'sorted'"),
    (dict(showable="some"), "showable = 'some'"), (dict(show_first=(2,)), r"show_first = \(2,\)"),
])
def test_bad_bindings_fail_at_construction(kwargs, binding):
    with pytest.raises(ValueError, match=rf"RegionGuidedMasking\.{binding}"):
        RegionGuidedMasking(**kwargs)


def test_ratio_that_leaves_nothing_visible_names_the_counts():
    with pytest.raises(ValueError, match=r"RegionGuidedMasking\.ratio = 0\.1 masks 0 of 4 patches per slice"):
        RegionGuidedMasking(0.1, tubelet=2, patch=8)(tokens(1, (1, 2, 2)),
                                                     {"digit_mask": torch.zeros(1, 2, 16, 16, dtype=torch.bool)},
                                                     MaskRNG.seeded(0))
