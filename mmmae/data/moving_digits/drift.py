"""A drifting MovingDigits stream: clips in order whose look changes over the stream (darker,
flatter, blurrier), for test-time training (mmmae/ttt/) to adapt to."""

import math
import operator

import gin
import torch
from torchvision.transforms.v2.functional import gaussian_blur

from mmmae.data.moving_digits.dataset import MovingDigits


@gin.configurable(module="mmmae")
class DriftingStream(torch.utils.data.Dataset):
    """Item ``t``: clip ``t`` of ``clips`` (a MovingDigits with video; the stream has ``len(clips)``
    items), its video drifted by the severity ``s(t)`` in [0, 1] (:meth:`severity`):

      video <- clamp(blur_{s * blur}(video + s * ((contrast - 1) * (video - 0.5) + brightness)), 0, 1)

    i.e. at full severity the contrast about mid-grey is multiplied by ``contrast``, ``brightness``
    is added, and every frame is blurred by a Gaussian of std ``blur`` pixels. ``s`` rises linearly
    from 0 at the fraction ``onset`` of the stream to 1 at its last item, so the drift is smooth and
    monotone. Every other key of the clip (label, direction, flow, other modalities) is unchanged;
    the item adds ``drift`` () float32, its severity. Deterministic: clip t is MovingDigits' sample t.
    """

    def __init__(self, clips: MovingDigits = gin.REQUIRED, brightness: float = -0.25, contrast: float = 0.4,
                 blur: float = 1.0, onset: float = 0.0):
        if "video" not in clips.modalities:
            raise ValueError(f"DriftingStream.clips: a MovingDigits with video, got modalities {clips.modalities}")
        if not (0 < contrast and blur >= 0 and 0 <= onset < 1 and abs(brightness) <= 1):
            raise ValueError(f"DriftingStream: need contrast > 0, blur >= 0, 0 <= onset < 1 and |brightness| <= 1; got "
                             f"{contrast=}, {blur=}, {onset=}, {brightness=}")
        self.clips, self.brightness, self.contrast, self.blur, self.onset = clips, brightness, contrast, blur, onset

    def __len__(self) -> int:
        return len(self.clips)

    def severity(self, index: int) -> float:
        """The drift of item ``index`` in [0, 1]: 0 up to ``onset * (len - 1)``, then linear to 1 at the end."""
        index = operator.index(index)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for DriftingStream of length {len(self)}")
        progress = index / max(len(self) - 1, 1)
        return min(max((progress - self.onset) / (1 - self.onset), 0.0), 1.0)

    def drifted(self, video: torch.Tensor, severity: float) -> torch.Tensor:
        """video (C, T, H, W) in [0, 1] -> the same shape drifted by ``severity`` (see the class)."""
        video = video + severity * ((self.contrast - 1) * (video - 0.5) + self.brightness)  # exact at 0
        sigma = severity * self.blur
        if sigma > 0:
            kernel = 2 * math.ceil(3 * sigma) + 1
            frames = gaussian_blur(video.transpose(0, 1), [kernel, kernel], [sigma, sigma])  # (T, C, H, W)
            video = frames.transpose(0, 1)
        return video.clamp(0, 1)

    def __getitem__(self, index: int) -> dict:
        severity = self.severity(index)
        sample = self.clips[index]
        sample["video"] = self.drifted(sample["video"], severity)
        sample["drift"] = torch.tensor(severity, dtype=torch.float32)
        return sample
