"""Long MovingDigits videos for temporal action segmentation: one digit over one background whose
motion direction (the action) changes at every segment boundary, with optional empty gaps.

Frame labels: BACKGROUND (0) on an empty frame, 1 + d while the digit moves along direction d of
``directions`` evenly spaced ones (d * 360 / directions degrees, counter-clockwise on screen, as
MovingDigits' direction classes: with 4, right, up, left, down). Ego-Only's synthetic test:
128-frame videos of 2-5 segments, the class the motion direction, gaps empty frames.
"""

import dataclasses
import operator
from typing import NamedTuple

import gin
import numpy as np
import torch
from torch.utils.data import Dataset

from mmmae.data.moving_digits.dataset import MovingDigits
from mmmae.data.moving_digits.events import (
    DIRECTION_VECTORS,
    NUM_DIRECTIONS,
    SPLITS,
    DigitEvent,
    sample_event,
    surge_profile,
)
from mmmae.data.moving_digits.modalities.video import render_background, render_video

BACKGROUND = 0


class Piece(NamedTuple):
    """Frames [start, stop) of a video: an action segment (``label`` 1 + direction, ``event`` its
    motion) or a gap (``label`` BACKGROUND, ``event`` None)."""

    start: int
    stop: int
    label: int
    event: DigitEvent | None


@gin.configurable(module="mmmae")
class ActionSequences(Dataset):
    """Video ``i``: ``frames`` frames of ``n`` action segments (``min_segments..max_segments``,
    uniform), each at least ``min_segment_frames`` long; before each segment and after the last, a
    gap of 1..``max_gap_frames`` empty frames (the background alone) with probability ``gap``.

    ``clips`` (a MovingDigits of video alone) gives the rendering settings (split, size, digit
    size, channels, speeds, fps, surge) and the digit images (its split's). One digit image, colour
    and background per video; a segment's direction differs from its predecessor's and leaves the
    digit room to move (the speed is lowered where the frame edge would stop it, as MovingDigits
    does); the digit continues from where the previous segment left it, through the gaps too.
    Drawn from ``np.random.default_rng([seed, split, i])``: deterministic.

    A sample (T = frames, S = max_segments):
      video (C, T, H, W) float32 in [0, 1]; frame_labels (T,) int64 (module docstring);
      segments (S, 3) int64 rows (start, stop, label) of the action segments in order, -1 rows
        after num_segments; num_segments () int64; index () int64.
    """

    def __init__(self, clips: MovingDigits = gin.REQUIRED, num_samples: int = 256, frames: int = 128,
                 min_segments: int = 2, max_segments: int = 5, directions: int = 4, min_segment_frames: int = 12,
                 gap: float = 0.5, max_gap_frames: int = 8, seed: int = 0):
        if tuple(clips.modalities) != ("video",):
            raise ValueError(f"ActionSequences.clips: a MovingDigits of video alone, got modalities {clips.modalities}")
        if not 1 <= min_segments <= max_segments or num_samples < 1 or min_segment_frames < 2:
            raise ValueError(f"ActionSequences: need 1 <= min_segments <= max_segments, num_samples >= 1 and "
                             f"min_segment_frames >= 2, got {min_segments=}, {max_segments=}, {num_samples=}, "
                             f"{min_segment_frames=}")
        if directions not in (2, 4, 8) or not 0 <= gap <= 1 or max_gap_frames < 1:
            raise ValueError(f"ActionSequences: directions = {directions} must be 2, 4 or 8 (MovingDigits' direction "
                             f"classes), gap = {gap} a probability and max_gap_frames = {max_gap_frames} >= 1")
        longest = max_segments * min_segment_frames + (max_segments + 1) * max_gap_frames
        if frames < longest:
            raise ValueError(f"ActionSequences.frames = {frames}: too few for {max_segments} segments of "
                             f"min_segment_frames = {min_segment_frames} and their gaps of up to "
                             f"max_gap_frames = {max_gap_frames} (need >= {longest})")
        self.clips, self.num_samples, self.frames = clips, num_samples, frames
        self.min_segments, self.max_segments, self.directions = min_segments, max_segments, directions
        self.min_segment_frames, self.gap, self.max_gap_frames = min_segment_frames, gap, max_gap_frames
        self.seed = seed

    @property
    def num_classes(self) -> int:
        """Frame classes: BACKGROUND and one per direction."""
        return 1 + self.directions

    def __len__(self) -> int:
        return self.num_samples

    def pieces(self, index: int) -> list[Piece]:
        """Video ``index`` as its segments and gaps in order, covering frames [0, frames)."""
        index = operator.index(index)
        if not 0 <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for ActionSequences of length {self.num_samples}")
        rng = np.random.default_rng([self.seed, SPLITS.index(self.clips.split), index])
        count = int(rng.integers(self.min_segments, self.max_segments + 1))
        gaps = np.where(rng.random(count + 1) < self.gap, rng.integers(1, self.max_gap_frames + 1, count + 1), 0)
        free = self.frames - gaps.sum() - count * self.min_segment_frames
        lengths = self.min_segment_frames + rng.multinomial(free, rng.dirichlet(np.ones(count)))
        c = self.clips
        first = sample_event(rng, c.split, frames=c.frames, size=c.size, digit_size=c.digit_size, channels=c.channels,
                             min_speed=c.min_speed, max_speed=c.max_speed, fps=c.fps, surge=c.surge,
                             surge_cycles=c.surge_cycles, sway=c.sway)
        position, previous, pieces, start = np.asarray(first.start), -1, [], 0
        for k in range(count):
            if gaps[k]:
                pieces.append(Piece(start, start + int(gaps[k]), BACKGROUND, None))
                start += int(gaps[k])
            previous, event = self._segment_event(rng, first, position, previous, int(lengths[k]))
            pieces.append(Piece(start, start + int(lengths[k]), 1 + previous, event))
            position = position + event.path(np.array([lengths[k] / c.fps]))[0][0] * DIRECTION_VECTORS[event.direction]
            start += int(lengths[k])
        if gaps[count]:
            pieces.append(Piece(start, start + int(gaps[count]), BACKGROUND, None))
        return pieces

    def _segment_event(self, rng: np.random.Generator, first: DigitEvent, position: np.ndarray, previous: int,
                       length: int) -> tuple[int, DigitEvent]:
        """The direction (0..directions - 1) and motion of a segment of ``length`` frames from
        ``position``: a direction other than ``previous`` among those with the most room (at least
        half the best's), its speed uniform in the clips' [min_speed, max_speed], lowered to stay
        in the frame up to where the next segment starts (frame ``length``)."""
        c = self.clips
        step = NUM_DIRECTIONS // self.directions
        room = c.size - c.digit_size
        reach = c.fps * surge_profile(length / c.fps, c.surge, length / c.fps / c.surge_cycles)[0]
        candidates = [d for d in range(self.directions) if d != previous]
        space = np.array([_room(position, DIRECTION_VECTORS[d * step], room) for d in candidates])
        choice = candidates[int(rng.choice(np.flatnonzero(space >= space.max() / 2)))]
        speed = min(float(rng.uniform(c.min_speed, c.max_speed)), float(space[candidates.index(choice)]) / reach)
        unit = DIRECTION_VECTORS[choice * step]
        return choice, dataclasses.replace(first, start=(float(position[0]), float(position[1])),
                                   velocity=(float(speed * unit[0]), float(speed * unit[1])), direction=choice * step,
                                   speed=speed, surge_period=length / c.fps / c.surge_cycles)

    def render(self, index: int, start: int = 0, stop: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Frames [start, stop) of video ``index``: video (C, stop - start, H, W) float32 and their
        labels (stop - start,) int64; only the pieces that overlap them are rendered."""
        stop = self.frames if stop is None else stop
        c = self.clips
        parts, labels = [], []
        pieces = self.pieces(index)
        background = render_background(next(p.event for p in pieces if p.event).background_seed, c.channels, c.size)
        for piece in pieces:
            low, high = max(piece.start, start), min(piece.stop, stop)
            if low >= high:
                continue
            if piece.event is None:
                part = np.broadcast_to(background[:, None], (c.channels, high - low, c.size, c.size))
            else:
                part = render_video(piece.event, frames=piece.stop - piece.start, size=c.size,
                                    digit_size=c.digit_size, render_sway=c.render_sway)["video"]
                part = part[:, low - piece.start:high - piece.start]
            parts.append(part)
            labels.append(np.full(high - low, piece.label))
        return torch.from_numpy(np.concatenate(parts, axis=1)), torch.from_numpy(np.concatenate(labels)).long()

    def __getitem__(self, index: int) -> dict:
        video, labels = self.render(index)
        actions = [p for p in self.pieces(index) if p.event is not None]
        segments = torch.full((self.max_segments, 3), -1, dtype=torch.int64)
        segments[:len(actions)] = torch.tensor([[p.start, p.stop, p.label] for p in actions])
        return {"video": video, "frame_labels": labels, "segments": segments,
                "num_segments": torch.tensor(len(actions)), "index": torch.tensor(operator.index(index))}


def _room(position: np.ndarray, unit: np.ndarray, room: float) -> float:
    """How far (pixels) the top-left ``position`` (x, y) can move along ``unit`` inside [0, room]^2."""
    limits = [(room - p) / u if u > 0 else -p / u for p, u in zip(position, unit) if abs(u) > 1e-9]
    return max(0.0, min(limits))


@gin.configurable(module="mmmae")
class ActionClips(Dataset):
    """Clips of ``sequences`` (ActionSequences) for pretraining on the target videos alone
    (Ego-Only's stage 1): each video cut into windows of ``frames`` frames (None: the clips'
    MovingDigits frames) back to back; sample ``i`` is window ``i % w`` of video ``i // w``.

    A sample: video (C, frames, H, W) float32; frame_labels (frames,) int64; index () int64.
    """

    def __init__(self, sequences: ActionSequences = gin.REQUIRED, frames: int | None = None):
        self.sequences = sequences
        self.window = sequences.clips.frames if frames is None else frames
        if not 1 <= self.window <= sequences.frames:
            raise ValueError(f"ActionClips.frames = {self.window}: need 1..{sequences.frames} (the videos' length)")
        self.per_video = sequences.frames // self.window

    def __len__(self) -> int:
        return len(self.sequences) * self.per_video

    def __getitem__(self, index: int) -> dict:
        index = operator.index(index)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for ActionClips of length {len(self)}")
        video, window = divmod(index, self.per_video)
        clip, labels = self.sequences.render(video, window * self.window, (window + 1) * self.window)
        return {"video": clip, "frame_labels": labels, "index": torch.tensor(index)}
