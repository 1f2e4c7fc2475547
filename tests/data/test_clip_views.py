"""CrossVideoMAE's clip views: shapes, the frame comes from the clip, the augmented copy is a real,
reproducible crop / flip of the whole clip."""

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import default_collate

from mmmae.data.clip_views import ClipViews
from tests.data.test_view_pairs import Clips
from tests.float32_bound import rounding_bound


def test_shapes_side_channels_and_presence():
    views = ClipViews(Clips(frames=8, size=32, ramps=True, present=False))
    sample = views[3]
    assert sample["video"].shape == sample["video_aug"].shape == (3, 8, 32, 32)
    assert sample["frame"].shape == (3, 1, 32, 32)
    assert sample["video_aug"].dtype == torch.float32
    assert 0 <= sample["video_aug"].min() <= sample["video_aug"].max() <= 1
    assert sample["video_aug_box"].shape == (4,) and sample["video_aug_flipped"].dtype == torch.bool
    assert (sample["label"], sample["index"], sample["caption"]) == (3, 3, "clip 3")
    assert "flow" not in sample  # not a scalar side channel
    assert all(sample[f"{key}_present"].item() is False for key in ("video", "video_aug", "frame"))
    batch = default_collate([views[i] for i in range(4)])
    assert batch["video_aug"].shape == (4, 3, 8, 32, 32) and batch["frame_frame"].shape == (4,)


def test_the_frame_is_the_clips_frame_it_names_and_the_clip_is_unchanged():
    clips = Clips(frames=8, size=16, ramps=True)
    views = ClipViews(clips)
    frames = set()
    for index in range(16):
        sample = views[index]
        t = sample["frame_frame"].item()
        frames.add(t)
        assert torch.equal(sample["frame"][:, 0], clips[index]["video"][:, t])
        assert torch.equal(sample["video"], clips[index]["video"])
    assert len(frames) > 1, "the frame is drawn, not fixed"


def test_the_augmented_copy_is_one_crop_and_flip_of_every_frame():
    clips = Clips(frames=4, size=32, ramps=True)
    views = ClipViews(clips, area=(0.3, 0.6), flip=0.5)
    flips = set()
    for index in range(16):
        sample = views[index]
        top, left, h, w = (int(v) for v in sample["video_aug_box"])
        assert h * w < 32 * 32 and not torch.equal(sample["video_aug"], sample["video"])
        crop = clips[index]["video"][:, :, top : top + h, left : left + w]
        expected = F.interpolate(crop, size=(32, 32), mode="bilinear", antialias=True, align_corners=False)
        if sample["video_aug_flipped"]:
            expected = expected.flip(-1)
        flips.add(bool(sample["video_aug_flipped"]))
        # torchvision's and torch's antialiased bilinear resizes: weighted means of at most 32 pixels per axis
        assert (sample["video_aug"] - expected.clamp(0, 1)).abs().max() <= rounding_bound(expected, 2, 32)
        # the ramps: frame t's channel 2 holds t / T everywhere, so the crop keeps each frame's time
        for t in range(4):
            assert torch.allclose(sample["video_aug"][2, t], torch.full((32, 32), t / 4))
    assert flips == {True, False}


def test_views_are_deterministic_per_index_and_seed():
    views = ClipViews(Clips(frames=8, size=16, ramps=True))
    a, b = views[5], views[5]
    assert all(torch.equal(a[k], b[k]) for k in ("video_aug", "video_aug_box", "frame"))
    other = ClipViews(Clips(frames=8, size=16, ramps=True), seed=1)[5]
    assert not torch.equal(a["video_aug_box"], other["video_aug_box"])


@pytest.mark.parametrize("kwargs, message", [
    (dict(keys=("video", "video")), "three distinct names"),
    (dict(keys=("video", "video", "frame")), "three distinct names"),
    (dict(flip=1.5), "ClipViews.flip"),
    (dict(area=(0.0, 0.5)), "ClipViews.area"),
    (dict(ratio=(2.0, 1.0)), "ClipViews.ratio"),
])
def test_bad_arguments_name_the_binding(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ClipViews(Clips(), **kwargs)


def test_a_sample_without_a_clip_names_the_key():
    with pytest.raises(ValueError, match=r"ClipViews needs sample\['audio'\]"):
        ClipViews(Clips(), source="audio")[0]
