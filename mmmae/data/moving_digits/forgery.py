"""A synthetic forgery task on MovingDigits: half the clips are forged over a span of frames, either
in appearance (another digit blended into the digit, motion unchanged) or in motion (the digit
jitters, appearance unchanged), for real/fake detection (mmmae/eval/forgery.py)."""

from __future__ import annotations

import dataclasses
import itertools

import gin
import numpy as np
import torch
from torch.utils.data import Dataset

from mmmae.data.moving_digits.dataset import MovingDigits
from mmmae.data.moving_digits.events import SPLITS, DigitEvent, load_digit_images, split_image_indices
from mmmae.data.moving_digits.modalities.video import render_video

FAKE_KINDS = ("real", "appearance", "motion")  # fake_kind ids
FORGERY_STREAM = 2  # the spawn key of a sample's forgery draws (MovingDigits' presence draws use 1)


@dataclasses.dataclass(frozen=True)
class JitteredEvent(DigitEvent):
    """A DigitEvent whose rendered positions are moved by `offsets` ((frames + 1, 2) whole pixels)."""

    offsets: tuple[tuple[int, int], ...] = ()

    def positions(self, frames: int) -> np.ndarray:
        return super().positions(frames) + np.asarray(self.offsets, dtype=np.int64)[:frames]


@gin.configurable(module="mmmae")
class ForgedMovingDigits(Dataset):
    """`clips`' samples, odd indices forged, with `fake` () int64 (index % 2), `fake_kind` () int64
    (an index into FAKE_KINDS: 0 real) and `fake_span` (2,) int64 [start, stop) of the forged
    frames ([0, 0] when real). Real samples are `clips`' samples unchanged.

    The fakes take turns over `kinds` (fake i uses kinds[(index // 2) % len(kinds)]); the span of
    `span` frames starts at a frame drawn per sample (deterministic per (seed, split, index)):
      appearance: in the span, the clip is (1 - blend) x itself + blend x the same clip rendered
        with another digit image of the split (another class), so the digit looks overlaid
        (blend 1: replaced); the motion is unchanged; digit_mask is where either visible digit's
        alpha > 0.5 and flow the (unchanged) displacement on it;
      motion: in the span, the digit is moved by a random whole-pixel offset per frame, each axis
        in [-jitter, jitter], never (0, 0), turned back where it would leave the frame; the
        appearance is unchanged; flow, digit_mask and position are those of the jittered
        rendering (so flow into and out of the span follows the jitter).
    Only the video and its side channels are forged (other modalities stay as rendered); the clips
    need video in every sample.
    """

    def __init__(self, clips: MovingDigits = gin.REQUIRED, kinds: tuple[str, ...] = ("appearance", "motion"),
                 span: int = 4, blend: float = 0.5, jitter: int = 2):
        kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
        if not kinds or not set(kinds) <= set(FAKE_KINDS[1:]):
            raise ValueError(f"ForgedMovingDigits.kinds = {kinds!r}: name one or more of {FAKE_KINDS[1:]}")
        if "video" not in clips.modalities or clips.missing.get("video", 0) > 0:
            raise ValueError("ForgedMovingDigits forges the video: its clips (ForgedMovingDigits.clips) need "
                             f"'video' in MovingDigits.modalities (got {clips.modalities}) and no missing video")
        if not 1 <= span <= clips.frames:
            raise ValueError(f"ForgedMovingDigits.span = {span}: need 1 <= span <= the clips' {clips.frames} frames")
        if not 0 < blend <= 1:
            raise ValueError(f"ForgedMovingDigits.blend = {blend}: need 0 < blend <= 1")
        room = clips.size - clips.digit_size
        if not 1 <= jitter <= room // 2:
            raise ValueError(f"ForgedMovingDigits.jitter = {jitter}: need 1 <= jitter <= (size - digit_size) // 2 = "
                             f"{room // 2} so a jittered digit can always turn back inside the frame")
        self.clips, self.kinds, self.span, self.blend, self.jitter = clips, kinds, span, blend, jitter
        self.moves = np.array([m for m in itertools.product(range(-jitter, jitter + 1), repeat=2) if m != (0, 0)])

    def __len__(self) -> int:
        return len(self.clips)

    def kind(self, index: int) -> int:
        """The fake_kind id of sample `index` (0: real)."""
        return 0 if index % 2 == 0 else FAKE_KINDS.index(self.kinds[(index // 2) % len(self.kinds)])

    def __getitem__(self, index: int) -> dict:
        sample = self.clips[index]
        kind = self.kind(index)
        sample["fake"] = torch.tensor(int(kind > 0), dtype=torch.int64)
        sample["fake_kind"] = torch.tensor(kind, dtype=torch.int64)
        sample["fake_span"] = torch.zeros(2, dtype=torch.int64)
        if kind == 0:
            return sample
        clips = self.clips
        rng = np.random.default_rng(np.random.SeedSequence([clips.seed, SPLITS.index(clips.split), index],
                                                          spawn_key=(FORGERY_STREAM,)))
        start = int(rng.integers(clips.frames - self.span + 1))
        span = slice(start, start + self.span)
        event = clips.event(index)
        forge = self.appearance if FAKE_KINDS[kind] == "appearance" else self.motion
        sample.update(forge(event, span, rng))
        sample["fake_span"] = torch.tensor([span.start, span.stop], dtype=torch.int64)
        return sample

    def render(self, event: DigitEvent) -> dict[str, torch.Tensor]:
        """`event` rendered as the clips render it: video (C, T, H, W), digit_mask, flow, position."""
        clips = self.clips
        rendered = render_video(event, frames=clips.frames, size=clips.size, digit_size=clips.digit_size,
                                render_sway=clips.render_sway)
        return {key: torch.from_numpy(value) for key, value in rendered.items()}

    def appearance(self, event: DigitEvent, span: slice, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """The clip, its frames in `span` blended with its rendering by another class's digit image."""
        images = split_image_indices(self.clips.split)
        labels = load_digit_images()[1]
        other = int(rng.choice(images[labels[images] != event.label]))
        own = self.render(event)
        swapped = self.render(dataclasses.replace(event, image_index=other, label=int(labels[other])))
        in_span = torch.zeros(self.clips.frames, dtype=torch.bool)
        in_span[span] = True
        own_mask = own["digit_mask"] & ~(in_span[:, None, None] & (self.blend == 1))
        mask = torch.where(in_span[:, None, None], own_mask | swapped["digit_mask"], own["digit_mask"])
        weight = torch.where(in_span, self.blend, 0.0)[:, None, None]  # (T, 1, 1)
        return {"video": own["video"] + weight * (swapped["video"] - own["video"]),
                "digit_mask": mask,
                "flow": torch.where(own_mask, own["flow"], torch.where(mask, swapped["flow"], 0.0))}

    def motion(self, event: DigitEvent, span: slice, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """The clip rendered with the digit jittered on the frames of `span`."""
        frames, room = self.clips.frames, self.clips.size - self.clips.digit_size
        offsets = np.zeros((frames + 1, 2), np.int64)
        offsets[span] = self.moves[rng.integers(len(self.moves), size=span.stop - span.start)]
        base = event.positions(frames + 1)
        outside = (base + offsets < 0) | (base + offsets > room)
        offsets = np.where(outside, -offsets, offsets)
        fields = {f.name: getattr(event, f.name) for f in dataclasses.fields(DigitEvent)}
        return self.render(JitteredEvent(**fields, offsets=tuple(map(tuple, offsets.tolist()))))
