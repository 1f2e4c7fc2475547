"""DigitSequences: long videos of clips back to back, per-segment and sequence labels, repeats."""

import pytest
import torch

from mmmae.data.moving_digits.dataset import MovingDigits
from mmmae.data.moving_digits.sequences import IGNORE, DigitSequences


def clips(**kwargs) -> MovingDigits:
    return MovingDigits(num_samples=64, frames=4, size=16, digit_size=8, **kwargs)


def test_segments_are_the_clips_back_to_back_with_their_labels():
    data = DigitSequences(clips(), num_samples=6, min_segments=2, max_segments=5, repeat=0.5)
    for i in range(len(data)):
        sample, chosen = data[i], data.clip_indices(i)
        count = len(chosen)
        assert 2 <= count <= 5 and sample["num_segments"] == count
        assert sample["video"].shape == (3, 5 * 4, 16, 16) and sample["video_frames"] == count * 4
        for k, c in enumerate(chosen):
            clip = data.clips[c]
            assert torch.equal(sample["video"][:, 4 * k:4 * k + 4], clip["video"])
            assert sample["segment_labels"][k] == clip["label"] and sample["segment_directions"][k] == clip["direction"]
        assert not sample["video"][:, count * 4:].any()
        assert (sample["segment_labels"][count:] == IGNORE).all()
        assert (sample["segment_directions"][count:] == IGNORE).all()
        assert sample["first_label"] == sample["segment_labels"][0]
        assert sample["last_label"] == sample["segment_labels"][count - 1]
        assert sample["index"] == i


def test_lengths_cover_the_range_and_repeats_copy_their_predecessor():
    data = DigitSequences(clips(), num_samples=200, min_segments=3, max_segments=12, repeat=0.3)
    lengths = [len(data.clip_indices(i)) for i in range(len(data))]
    assert min(lengths) == 3 and max(lengths) == 12
    repeats = total = 0
    for i in range(20):
        sample, chosen = data[i], data.clip_indices(i)
        flags = sample["segment_repeats"]
        assert not flags[0] and not flags[len(chosen):].any()
        for k in range(1, len(chosen)):
            assert bool(flags[k]) == (chosen[k] == chosen[k - 1])
            if flags[k]:
                assert torch.equal(sample["video"][:, 4 * k:4 * k + 4], sample["video"][:, 4 * k - 4:4 * k])
        repeats, total = repeats + int(flags.sum()), total + len(chosen) - 1
    assert 0 < repeats < total  # some segments repeat, most do not (repeat = 0.3)


def test_deterministic_across_objects_and_seeded():
    a = DigitSequences(clips(), num_samples=4)
    b = DigitSequences(clips(), num_samples=4)
    other = DigitSequences(clips(), num_samples=4, seed=1)
    assert all(torch.equal(a[i]["video"], b[i]["video"]) for i in range(4))
    assert [a.clip_indices(i) for i in range(4)] != [other.clip_indices(i) for i in range(4)]


@pytest.mark.parametrize("kwargs, match", [
    ({"min_segments": 0}, "min_segments"), ({"min_segments": 5, "max_segments": 4}, "min_segments"),
    ({"repeat": 1.0}, "repeat"),
])
def test_bad_settings_name_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DigitSequences(clips(), **kwargs)


def test_clips_must_be_video_only_and_indices_in_range():
    with pytest.raises(ValueError, match="video alone"):
        DigitSequences(clips(modalities=["video", "audio"]))
    with pytest.raises(IndexError, match="out of range"):
        DigitSequences(clips(), num_samples=2)[2]
