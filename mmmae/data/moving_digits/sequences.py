"""Long MovingDigits videos: several clips (events) one after another, with per-segment labels.

A long-video model (LV-MAE) reads such a video as a sequence of segment embeddings; the
sequence labels below test what a mean of those embeddings cannot tell.
"""

import operator

import gin
import numpy as np
import torch

from mmmae.data.moving_digits.dataset import MovingDigits
from mmmae.data.moving_digits.events import SPLITS

IGNORE = -1  # per-segment label of a padded segment


@gin.configurable(module="mmmae")
class DigitSequences(torch.utils.data.Dataset):
    """Sequence ``i``: ``n`` segments (``min_segments..max_segments``, uniform), each one clip of
    ``clips`` (a MovingDigits, video only: ``clips.frames`` frames each), one after another.

    Segment 0 is a fresh clip; each later one repeats its predecessor's clip exactly with
    probability ``repeat`` (a redundant segment, which importance masking drops first), else it
    is a fresh clip. Fresh clips are drawn from ``clips`` by index, so the digit images follow
    ``clips.split``. Drawn from ``np.random.SeedSequence([seed, split, i])``: deterministic.

    A sample (S = max_segments, T = clips.frames, F = n * T frames):
      video (C, S * T, H, W) float32: the segments back to back, zeros after frame F;
      video_frames () int64 F; num_segments () int64 n;
      segment_labels, segment_directions (S,) int64: each segment's digit and direction, -1 on padding;
      segment_repeats (S,) bool: the segment repeats its predecessor;
      first_label, last_label () int64: the digit of the first / last segment (a mean over the
        segments cannot tell which digit came first or last: these need the order);
      index () int64.
    """

    def __init__(self, clips: MovingDigits = gin.REQUIRED, num_samples: int = 1024, min_segments: int = 3,
                 max_segments: int = 12, repeat: float = 0.3, seed: int = 0):
        if tuple(clips.modalities) != ("video",):
            raise ValueError(f"DigitSequences.clips: a MovingDigits of video alone, got modalities {clips.modalities}")
        if not 1 <= min_segments <= max_segments or num_samples < 1:
            raise ValueError(f"DigitSequences: need 1 <= min_segments <= max_segments and num_samples >= 1, got "
                             f"{min_segments=}, {max_segments=}, {num_samples=}")
        if not 0 <= repeat < 1:
            raise ValueError(f"DigitSequences.repeat = {repeat}: a probability in [0, 1)")
        self.clips, self.num_samples = clips, num_samples
        self.min_segments, self.max_segments, self.repeat, self.seed = min_segments, max_segments, repeat, seed

    def __len__(self) -> int:
        return self.num_samples

    def clip_indices(self, index: int) -> list[int]:
        """The clip index of each segment of sequence ``index`` (a repeat has its predecessor's)."""
        index = operator.index(index)
        if not 0 <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for DigitSequences of length {self.num_samples}")
        rng = np.random.default_rng([self.seed, SPLITS.index(self.clips.split), index])
        count = int(rng.integers(self.min_segments, self.max_segments + 1))
        fresh = rng.integers(0, len(self.clips), size=count)
        repeats = rng.random(count) < self.repeat
        chosen = [int(fresh[0])]
        for k in range(1, count):
            chosen.append(chosen[-1] if repeats[k] else int(fresh[k]))
        return chosen

    def __getitem__(self, index: int) -> dict:
        chosen = self.clip_indices(index)
        clips = [self.clips[c] for c in chosen]
        count, slots = len(chosen), self.max_segments
        video = torch.cat([c["video"] for c in clips], dim=1)
        padding = video.new_zeros(video.shape[0], (slots - count) * self.clips.frames, *video.shape[2:])
        labels = torch.full((slots,), IGNORE, dtype=torch.int64)
        directions = labels.clone()
        labels[:count] = torch.stack([c["label"] for c in clips])
        directions[:count] = torch.stack([c["direction"] for c in clips])
        repeats = torch.zeros(slots, dtype=torch.bool)
        repeats[1:count] = torch.tensor([a == b for a, b in zip(chosen, chosen[1:])], dtype=torch.bool)
        return {"video": torch.cat([video, padding], dim=1), "video_frames": torch.tensor(video.shape[1]),
                "num_segments": torch.tensor(count), "segment_labels": labels, "segment_directions": directions,
                "segment_repeats": repeats, "first_label": labels[0].clone(), "last_label": labels[count - 1].clone(),
                "index": torch.tensor(operator.index(index))}
