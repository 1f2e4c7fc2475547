"""ActionSequences: long videos whose motion direction changes at segment boundaries; ActionClips cut them."""

import numpy as np
import pytest
import torch

from mmmae.data.moving_digits.action_sequences import BACKGROUND, ActionClips, ActionSequences
from mmmae.data.moving_digits.dataset import MovingDigits
from mmmae.data.moving_digits.events import DIRECTION_VECTORS, NUM_DIRECTIONS
from mmmae.data.moving_digits.modalities.video import render_background
from mmmae.eval.segmentation_metrics import label_segments


def sequences(**kwargs) -> ActionSequences:
    clips = MovingDigits(frames=4, size=24, digit_size=8, min_speed=0.5, max_speed=1.5)
    return ActionSequences(clips, **{"num_samples": 30, "frames": 128, **kwargs})


def test_labels_change_at_every_boundary_and_the_segments_are_the_label_runs():
    data = sequences()
    counts = set()
    for i in range(len(data)):
        sample = data[i]
        labels, n = sample["frame_labels"], int(sample["num_segments"])
        counts.add(n)
        assert sample["video"].shape == (3, 128, 24, 24) and labels.shape == (128,)
        segments = sample["segments"][:n]
        assert (sample["segments"][n:] == -1).all()
        assert segments.tolist() == label_segments(labels.numpy(), BACKGROUND).tolist()
        assert (segments[1:, 2] != segments[:-1, 2]).all()  # the action changes, gap or no gap
        assert ((segments[:, 1] - segments[:, 0]) >= data.min_segment_frames).all()
        assert set(labels.tolist()) <= set(range(data.num_classes))
    assert counts == {2, 3, 4, 5}


def test_the_digit_moves_along_its_segments_direction_and_gaps_are_empty():
    data = sequences(num_samples=12)
    step = NUM_DIRECTIONS // data.directions
    moved = 0
    for i in range(len(data)):
        pieces = data.pieces(i)
        event = next(p.event for p in pieces if p.event)
        background = torch.from_numpy(render_background(event.background_seed, 3, 24))
        video = data[i]["video"]
        digit = (video - background[:, None]).abs().sum(0) > 0.3  # (T, H, W)
        for piece in pieces:
            if piece.event is None:
                assert not digit[piece.start:piece.stop].any()
                continue
            assert piece.event.direction == (piece.label - 1) * step
            ys, xs = torch.meshgrid(torch.arange(24.0), torch.arange(24.0), indexing="ij")
            first, last = digit[piece.start], digit[piece.stop - 1]
            shift = np.array([float((xs * last).sum() / last.sum() - (xs * first).sum() / first.sum()),
                              float((ys * last).sum() / last.sum() - (ys * first).sum() / first.sum())])
            if np.linalg.norm(shift) >= 2:  # far enough for the centroid's direction to be clear
                moved += 1
                unit = DIRECTION_VECTORS[piece.event.direction]
                assert shift @ unit > 0.9 * np.linalg.norm(shift)
    assert moved >= 10


def test_deterministic_and_seeded():
    a, b, other = sequences(num_samples=3), sequences(num_samples=3), sequences(num_samples=3, seed=1)
    for i in range(3):
        assert torch.equal(a[i]["video"], b[i]["video"]) and torch.equal(a[i]["frame_labels"], b[i]["frame_labels"])
    assert not all(torch.equal(a[i]["frame_labels"], other[i]["frame_labels"]) for i in range(3))


def test_render_of_a_span_is_that_span_of_the_video():
    data = sequences(num_samples=2)
    sample = data[1]
    video, labels = data.render(1, 37, 70)
    assert torch.equal(video, sample["video"][:, 37:70]) and torch.equal(labels, sample["frame_labels"][37:70])


def test_clips_cut_the_videos_back_to_back():
    data = sequences(num_samples=3)
    clips = ActionClips(data)
    assert len(clips) == 3 * 128 // 4
    sample = clips[2 * 32 + 5]
    assert torch.equal(sample["video"], data[2]["video"][:, 20:24])
    assert torch.equal(sample["frame_labels"], data[2]["frame_labels"][20:24])
    with pytest.raises(IndexError):
        clips[len(clips)]


def test_settings_that_cannot_fit_are_refused():
    with pytest.raises(ValueError, match="ActionSequences.frames = 40"):
        sequences(frames=40)
    with pytest.raises(ValueError, match="directions = 3"):
        sequences(directions=3)
    with pytest.raises(ValueError, match="video alone"):
        ActionSequences(MovingDigits(modalities=("video", "audio")))
