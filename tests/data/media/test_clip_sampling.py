"""Clip samplers on frame timestamps: exact indices, sampling by time, windows, short-clip policies."""

import gin
import numpy as np
import pytest

from mmmae.data.media.clip_sampling import ClipSelection, DenseSampling, SegmentSampling
from mmmae.data.media.errors import MediaError

FPS = 25


def constant_rate(frames: int, fps: float = FPS) -> np.ndarray:
    return np.arange(frames) / fps


def test_dense_center_indices_for_a_constant_frame_rate():
    selection = DenseSampling(frames=4, stride=4, mode="center")(constant_rate(100), np.random.default_rng(0))
    # the clip spans 3 * 4 + 1 = 13 frames, so it starts at frame 0..87; centred: 43.5 -> 43
    assert isinstance(selection, ClipSelection) and selection.indices.dtype == np.int64
    np.testing.assert_array_equal(selection.indices, [43, 47, 51, 55])
    assert (selection.start, selection.end) == pytest.approx((43 / FPS, 56 / FPS))


def test_dense_random_starts_cover_every_valid_frame_reproducibly():
    sampler, timestamps = DenseSampling(frames=4, stride=4), constant_rate(100)
    starts = []
    for seed in range(400):
        selection = sampler(timestamps, np.random.default_rng(seed))
        first = selection.indices[0]
        np.testing.assert_array_equal(selection.indices, first + 4 * np.arange(4))
        assert selection.start == pytest.approx(first / FPS) and selection.end == pytest.approx((first + 13) / FPS)
        starts.append(first)
    assert min(starts) == 0 and max(starts) == 87 and len(set(starts)) > 80
    again = sampler(timestamps, np.random.default_rng(5)).indices
    np.testing.assert_array_equal(again, sampler(timestamps, np.random.default_rng(5)).indices)


def test_a_clip_that_fits_exactly_has_one_start():
    for mode in ("random", "center"):
        sampler = DenseSampling(frames=4, stride=4, mode=mode, short="fail")
        selection = sampler(constant_rate(13), np.random.default_rng(1))
        np.testing.assert_array_equal(selection.indices, [0, 4, 8, 12])


def test_dense_variable_frame_rate_picks_the_frame_on_screen_at_each_time():
    timestamps = np.array([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 1.0, 1.05, 1.1, 1.3])  # median step 0.1 s
    selection = DenseSampling(frames=6, stride=2, mode="center")(timestamps, np.random.default_rng(0))
    # span 1.1 s of 1.4 s: starts 0..0.3 s, centred 0.15 -> frame 1 (0.1 s); wants 0.1, 0.3, ..., 1.1 s
    np.testing.assert_array_equal(selection.indices, [1, 3, 5, 7, 7, 10])
    assert (selection.start, selection.end) == pytest.approx((0.1, 1.2))


def test_time_rounding_does_not_shift_picks():
    timestamps = constant_rate(50) + np.where(np.arange(50) % 2, 1e-7, -1e-7)  # pts rounding jitter
    selection = DenseSampling(frames=5, stride=3, mode="center")(timestamps, np.random.default_rng(0))
    np.testing.assert_array_equal(np.diff(selection.indices), [3, 3, 3, 3])


@pytest.mark.parametrize("short, expected", [("pad", [0, 4, 8, 9]), ("loop", [0, 4, 8, 2])])
def test_short_video_policies(short, expected):
    # 10 frames at 10 fps (1 s); the clip wants 0, 0.4, 0.8, 1.2 s over 1.3 s
    selection = DenseSampling(frames=4, stride=4, short=short)(np.arange(10) / 10, np.random.default_rng(0))
    np.testing.assert_array_equal(selection.indices, expected)
    assert (selection.start, selection.end) == pytest.approx((0.0, 1.3))


def test_short_video_fails_when_asked():
    with pytest.raises(MediaError, match="clip needs 1.300 s but the video \\(window\\) has 1.000 s"):
        DenseSampling(frames=4, stride=4, short="fail")(np.arange(10) / 10, np.random.default_rng(0))


def test_dense_window_restricts_to_its_frames():
    timestamps, rng = constant_rate(100), np.random.default_rng(2)
    selection = DenseSampling(frames=4, stride=4, mode="center")(timestamps, rng, window=(2.0, 3.0))
    # frames 50..74; starts 50..62; centred 56
    np.testing.assert_array_equal(selection.indices, [56, 60, 64, 68])
    for _ in range(50):
        indices = DenseSampling(frames=4, stride=4)(timestamps, rng, window=(2.0, 3.0)).indices
        assert indices.min() >= 50 and indices.max() <= 74
    padded = DenseSampling(frames=4, stride=4)(timestamps, rng, window=(2.01, 2.3))  # frames 51..57
    np.testing.assert_array_equal(padded.indices, [51, 55, 57, 57])
    with pytest.raises(MediaError, match="has 0.260 s"):
        DenseSampling(frames=4, stride=4, short="fail")(timestamps, rng, window=(2.01, 2.3))
    with pytest.raises(MediaError, match="no frame in window"):
        DenseSampling()(timestamps, rng, window=(5.0, 6.0))


def test_segment_center_matches_tsn_test_indices():
    selection = SegmentSampling(frames=8, mode="center")(constant_rate(100), np.random.default_rng(0))
    np.testing.assert_array_equal(selection.indices, [int(12.5 / 2 + 12.5 * k) for k in range(8)])
    assert (selection.start, selection.end) == pytest.approx((0.0, 4.0))


def test_segment_random_takes_one_frame_from_each_segment():
    sampler, timestamps = SegmentSampling(frames=8), constant_rate(100)
    draws = np.stack([sampler(timestamps, np.random.default_rng(seed)).indices for seed in range(200)])
    lower, upper = np.floor(12.5 * np.arange(8)), 12.5 * np.arange(1, 9)
    assert np.all(draws >= lower) and np.all(draws < upper)
    assert all(len(np.unique(draws[:, k])) >= 10 for k in range(8))


def test_segments_repeat_frames_of_a_short_video_and_respect_windows():
    selection = SegmentSampling(frames=8, mode="center")(constant_rate(4), np.random.default_rng(0))
    np.testing.assert_array_equal(selection.indices, [0, 0, 1, 1, 2, 2, 3, 3])
    windowed = SegmentSampling(frames=4, mode="center")(constant_rate(100), np.random.default_rng(0), window=(1, 2.6))
    np.testing.assert_array_equal(windowed.indices, [30, 40, 50, 60])
    assert (windowed.start, windowed.end) == pytest.approx((1.0, 2.6))


def test_bad_arguments_and_too_few_frames():
    with pytest.raises(ValueError, match="mode"):
        DenseSampling(mode="uniform")
    with pytest.raises(ValueError, match="short"):
        DenseSampling(short="crop")
    with pytest.raises(ValueError, match="positive"):
        SegmentSampling(frames=0)
    with pytest.raises(ValueError, match="window"):
        SegmentSampling()(constant_rate(10), np.random.default_rng(0), window=(2.0, 1.0))
    with pytest.raises(MediaError, match="at least 2 frames"):
        SegmentSampling()(np.zeros(1), np.random.default_rng(0))


def test_samplers_are_gin_configurable():
    try:
        gin.parse_config("mmmae.DenseSampling.frames = 8\nmmmae.SegmentSampling.mode = 'center'")
        assert DenseSampling().frames == 8 and SegmentSampling().mode == "center"
    finally:
        gin.clear_config()
