"""View pairs: SiamMAE's frame pairs (gap bounds, determinism) and CropMAE's global/local crops."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import default_collate

from mmmae.data.view_pairs import CropPairs, FramePairs


class Clips(torch.utils.data.Dataset):
    """Frame t of every clip is filled with t; channel 0 of frame t also holds an x ramp and
    channel 1 a y ramp (values in [0, 1)) when `ramps`. Side channels like MovingDigits'."""

    def __init__(self, frames: int = 8, size: int = 32, ramps: bool = False, present: bool = True):
        self.frames, self.size, self.ramps, self.present = frames, size, ramps, present

    def __len__(self) -> int:
        return 16

    def __getitem__(self, index: int) -> dict:
        t, s = self.frames, self.size
        video = torch.arange(t, dtype=torch.float32).view(1, t, 1, 1).expand(3, t, s, s).clone() / t
        if self.ramps:
            ramp = torch.arange(s, dtype=torch.float32) / s
            video[0] = ramp.view(1, 1, s)
            video[1] = ramp.view(1, s, 1)
        return {"video": video, "flow": torch.zeros(2, t, s, s), "label": torch.tensor(index % 10),
                "index": torch.tensor(index), "caption": f"clip {index}", "video_present": torch.tensor(self.present)}


@settings(max_examples=25, deadline=None)
@given(frames=st.integers(1, 20), min_gap=st.integers(0, 10), extra=st.integers(0, 50), index=st.integers(0, 15))
def test_frame_gap_lies_in_the_range_clamped_to_the_clip(frames, min_gap, extra, index):
    pairs = FramePairs(Clips(frames=frames, size=4), min_gap=min_gap, max_gap=min_gap + extra)
    first, second = pairs.frames(index, frames)
    gap = second - first
    assert 0 <= first <= second < frames
    assert min(min_gap, frames - 1) <= gap <= min(min_gap + extra, frames - 1)
    sample = pairs[index]
    assert sample["view1"].shape == sample["view2"].shape == (3, 1, 4, 4)
    assert torch.all(sample["view1"] == first / frames) and torch.all(sample["view2"] == second / frames)
    assert (sample["view1_frame"], sample["view2_frame"]) == (first, second)


def test_frame_pairs_are_deterministic_per_index_and_cover_the_range():
    pairs = FramePairs(Clips(frames=64, size=4), min_gap=4, max_gap=48)
    draws = [pairs.frames(i, 64) for i in range(16)] + [pairs.frames(i, 64) for i in range(1000, 1200)]
    assert [pairs.frames(i, 64) for i in range(16)] == draws[:16]
    assert torch.equal(pairs[5]["view2"], pairs[5]["view2"])
    gaps = {b - a for a, b in draws}
    assert min(gaps) >= 4 and max(gaps) <= 48 and len(gaps) > 30, "gaps should spread over [4, 48]"
    assert FramePairs(Clips(frames=64), seed=1).frames(3, 64) != pairs.frames(3, 64) or \
        FramePairs(Clips(frames=64), seed=1).frames(4, 64) != pairs.frames(4, 64)


def test_scalar_side_channels_and_presence_pass_through_and_collate():
    pairs = FramePairs(Clips(present=False), keys=("a", "b"))
    sample = pairs[7]
    assert "flow" not in sample and "video" not in sample
    assert sample["label"] == 7 and sample["index"] == 7 and sample["caption"] == "clip 7"
    assert not sample["a_present"] and not sample["b_present"]
    batch = default_collate([pairs[0], pairs[1]])
    assert batch["a"].shape == (2, 3, 1, 32, 32) and batch["index"].tolist() == [0, 1]


def test_a_sample_without_a_clip_names_the_key():
    expected = r"FramePairs needs sample\['video'\] as a clip \(C, T, H, W\); got \(3, 32, 32\)"
    with pytest.raises(ValueError, match=expected):
        FramePairs([{"video": torch.zeros(3, 32, 32)}])[0]
    with pytest.raises(ValueError, match=r"FramePairs.min_gap = 5, FramePairs.max_gap = 2"):
        FramePairs(Clips(), min_gap=5, max_gap=2)


@settings(max_examples=25, deadline=None)
@given(index=st.integers(0, 15), size=st.sampled_from([None, 16, 24]))
def test_local_crop_lies_inside_the_global_crop(index, size):
    pairs = CropPairs(Clips(size=32), size=size)
    sample = pairs[index]
    out = size or 32
    assert sample["view1"].shape == sample["view2"].shape == (3, 1, out, out)
    (gt, gl, gh, gw), (lt, ll, lh, lw) = sample["view1_box"].tolist(), sample["view2_box"].tolist()
    assert 0 <= gt and 0 <= gl and gt + gh <= 32 and gl + gw <= 32
    eps = 1e-4
    assert gt - eps <= lt and gl - eps <= ll and lt + lh <= gt + gh + eps and ll + lw <= gl + gw + eps
    assert 0.5 * 32 * 32 * 0.9 <= gh * gw <= 32 * 32, "global area share in [0.5, 1] (up to rounding)"
    assert 0.3 * 0.8 <= (lh * lw) / (gh * gw) <= 0.6 * 1.2, "local area share of the global crop in [0.3, 0.6]"
    assert sample["view1_frame"] == sample["view2_frame"]
    for key in ("view1", "view2"):
        assert torch.allclose(sample[key][2], sample["view1_frame"] / 8), "both crops come from one frame"


@pytest.mark.parametrize("index", [0, 3, 9])
def test_boxes_say_where_the_pixels_come_from(index):
    """On x and y ramps, a view's mean is the ramp at its box's centre (resizing keeps the mean)."""
    sample = CropPairs(Clips(size=32, ramps=True), size=24)[index]
    for key in ("view1", "view2"):
        top, left, h, w = sample[f"{key}_box"].tolist()
        x_mean, y_mean = sample[key][0].mean().item(), sample[key][1].mean().item()
        assert abs(x_mean - (left + w / 2 - 0.5) / 32) < 0.75 / 32, key
        assert abs(y_mean - (top + h / 2 - 0.5) / 32) < 0.75 / 32, key


def test_crops_are_deterministic_per_index_and_vary_across_indices():
    pairs = CropPairs(Clips(size=32))
    assert torch.equal(pairs[4]["view2"], pairs[4]["view2"])
    boxes = {tuple(pairs[i]["view2_box"].tolist()) for i in range(8)}
    assert len(boxes) == 8


def test_whole_frame_crop_is_the_frame():
    """The probe's setting: global_area (1, 1) and ratio (1, 1) on a square frame."""
    clips = Clips(size=32, ramps=True)
    sample = CropPairs(clips, global_area=(1.0, 1.0), ratio=(1.0, 1.0))[2]
    frame = int(sample["view1_frame"])
    assert sample["view1_box"].tolist() == [0, 0, 32, 32]
    torch.testing.assert_close(sample["view1"][:, 0], clips[2]["video"][:, frame])


@pytest.mark.parametrize("binding, value", [("global_area", (0.0, 1.0)), ("local_area", (0.6, 0.3)),
                                            ("ratio", (1.5, 1.0)), ("global_area", (0.5, 1.2))])
def test_bad_crop_ranges_name_the_binding(binding, value):
    with pytest.raises(ValueError, match=rf"CropPairs\.{binding} = "):
        CropPairs(Clips(), **{binding: value})
