"""Which frames of a video make a clip: dense (VideoMAE) and segment (TSN / SSv2) sampling.

Samplers work on times, not frame counts, so variable frame rate videos are sampled by time.
Input: the video's frame timestamps (N,) in seconds, sorted, first frame at t = 0 (as
``video_reader.frame_timestamps`` returns them). The frame interval ``dt`` is the median of
the positive differences between consecutive timestamps. A wanted time ``t`` picks the frame on
screen at ``t``: the one whose timestamp is nearest at or before ``t``.

An optional ``window=(start, end)`` (seconds, e.g. a manifest's span) restricts sampling to
the frames whose timestamps lie in ``[start, end)``; the window then runs from its first frame
to ``min(end, last frame + dt)``.

A sampler that cannot make a clip raises :class:`MediaError` with an empty path;
``video_reader.read_frames`` re-raises it naming the file.
"""

from __future__ import annotations

from typing import NamedTuple

import gin
import numpy as np

from mmmae.data.media.errors import MediaError

_TOLERANCE = 1e-3  # in frame intervals: time rounding from integer pts must not change a pick
_NO_PATH = ""  # samplers see timestamps only; read_frames fills in the file


class ClipSelection(NamedTuple):
    """The frames of one clip: ``indices`` (T,) int64 into the timestamps and the span [start, end) in seconds."""

    indices: np.ndarray
    start: float
    end: float


class _Window(NamedTuple):
    """The frames ``[first, stop)`` a sampler may use, their span [start, end) in seconds, and the frame interval."""

    first: int
    stop: int
    start: float
    end: float
    dt: float


def _frame_window(timestamps: np.ndarray, window: tuple[float, float] | None) -> _Window:
    """Frame interval and the frames and span that ``window`` allows (the whole video for None)."""
    timestamps = np.asarray(timestamps, dtype=np.float64)
    if timestamps.ndim != 1 or len(timestamps) < 2:
        raise MediaError(_NO_PATH, f"need at least 2 frames to know the frame interval, got {len(timestamps)}")
    steps = np.diff(timestamps)
    if np.any(steps < 0):
        raise MediaError(_NO_PATH, "frame timestamps are not sorted")
    dt = float(np.median(steps[steps > 0])) if np.any(steps > 0) else 0.0
    if dt <= 0:
        raise MediaError(_NO_PATH, "all frames share one timestamp")
    first, stop = 0, len(timestamps)
    end = float(timestamps[-1]) + dt
    if window is not None:
        low, high = window
        if not high > low:
            raise ValueError(f"window must have start < end, got {window}")
        first, stop = np.searchsorted(timestamps, [low, high], side="left")
        if first >= stop:
            raise MediaError(_NO_PATH, f"no frame in window [{low:.3f}, {high:.3f}) s of a {end:.3f} s video")
        end = min(float(high), float(timestamps[stop - 1]) + dt)
    return _Window(int(first), int(stop), float(timestamps[first]), end, dt)


def _pick(timestamps: np.ndarray, times: np.ndarray, frames: _Window) -> np.ndarray:
    """(T,) int64 index of the frame on screen at each time (nearest at or before), kept inside the window."""
    picks = np.searchsorted(timestamps, times + _TOLERANCE * frames.dt, side="right") - 1
    return np.clip(picks, frames.first, frames.stop - 1).astype(np.int64)


@gin.configurable(module="mmmae")
class DenseSampling:
    """VideoMAE-style clips: ``frames`` frames ``stride`` frame intervals apart.

    The clip wants times t0 + k * stride * dt (k < frames) and spans [t0, t0 + ((frames - 1) *
    stride + 1) * dt). ``mode="random"`` draws t0 uniformly among the frames where a whole clip
    fits in the window; ``"center"`` takes the frame nearest at or before the centred start. A
    window shorter than the span starts at its first frame and follows ``short``: ``"pad"``
    repeats the last frame (VideoMAE), ``"loop"`` wraps around to the window's start, ``"fail"``
    raises :class:`MediaError`. The span's end may then lie past the video's end.
    """

    def __init__(self, frames: int = 16, stride: int = 4, mode: str = "random", short: str = "pad"):
        if frames < 1 or stride < 1:
            raise ValueError(f"DenseSampling.frames and .stride must be positive, got frames={frames} stride={stride}")
        if mode not in ("random", "center"):
            raise ValueError(f"DenseSampling.mode must be 'random' or 'center', got {mode!r}")
        if short not in ("pad", "loop", "fail"):
            raise ValueError(f"DenseSampling.short must be 'pad', 'loop' or 'fail', got {short!r}")
        self.frames, self.stride, self.mode, self.short = frames, stride, mode, short

    def __call__(
        self, timestamps: np.ndarray, rng: np.random.Generator, window: tuple[float, float] | None = None
    ) -> ClipSelection:
        """Pick the clip's frames from timestamps (N,) seconds; see the class docstring."""
        timestamps = np.asarray(timestamps, dtype=np.float64)
        frames = _frame_window(timestamps, window)
        offsets = np.arange(self.frames) * self.stride * frames.dt  # (T,) seconds after t0
        span = offsets[-1] + frames.dt
        latest = frames.end - span  # the last start whose clip fits in the window
        tolerance = _TOLERANCE * frames.dt
        if latest < frames.start - tolerance:
            if self.short == "fail":
                raise MediaError(
                    _NO_PATH, f"clip needs {span:.3f} s but the video (window) has {frames.end - frames.start:.3f} s"
                )
            start = frames.start
            if self.short == "loop":
                offsets = np.mod(offsets, frames.end - frames.start)
        else:
            starts = np.arange(frames.first, frames.stop)[timestamps[frames.first : frames.stop] <= latest + tolerance]
            if self.mode == "random":
                start = float(timestamps[rng.choice(starts)])
            else:
                start = float(timestamps[_pick(timestamps, np.array([(frames.start + latest) / 2]), frames)[0]])
        return ClipSelection(_pick(timestamps, start + offsets, frames), start, start + span)


@gin.configurable(module="mmmae")
class SegmentSampling:
    """TSN / SSv2 clips: the window cut into ``frames`` equal time segments, one frame from each.

    ``mode="random"`` takes the frame on screen at a uniformly random time in each segment (train),
    ``"center"`` the one at each segment's centre. A window with fewer frames than segments
    repeats frames. The clip spans the whole window: [first frame, min(window end, last frame + dt)).
    """

    def __init__(self, frames: int = 16, mode: str = "random"):
        if frames < 1:
            raise ValueError(f"SegmentSampling.frames must be positive, got {frames}")
        if mode not in ("random", "center"):
            raise ValueError(f"SegmentSampling.mode must be 'random' or 'center', got {mode!r}")
        self.frames, self.mode = frames, mode

    def __call__(
        self, timestamps: np.ndarray, rng: np.random.Generator, window: tuple[float, float] | None = None
    ) -> ClipSelection:
        """Pick one frame per segment from timestamps (N,) seconds; see the class docstring."""
        timestamps = np.asarray(timestamps, dtype=np.float64)
        frames = _frame_window(timestamps, window)
        length = (frames.end - frames.start) / self.frames
        position = rng.uniform(0.0, 1.0, self.frames) if self.mode == "random" else np.full(self.frames, 0.5)
        times = frames.start + (np.arange(self.frames) + position) * length
        return ClipSelection(_pick(timestamps, times, frames), frames.start, frames.end)
