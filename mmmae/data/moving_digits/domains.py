"""A second MovingDigits domain for cross-domain transfer (CDFSL-V's synthetic target), and the
source and target data joined for pretraining on both.

`TargetDomain` re-renders the video of another dataset's clips: the background (every pixel off
the digit, `digit_mask`) becomes a coloured stripe texture, the clip's contrast is inverted and
pixel noise is added; with `unlabelled` its labels become -1 (the `Classification` objective
skips them). Speed and digit classes are the wrapped MovingDigits' own bindings (e.g.
`target/MovingDigits.min_speed`, `.classes`).
"""

from collections.abc import Sequence

import einops
import gin
import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset

_DOMAIN_KEY = 22  # the texture and noise draws' own stream, apart from the wrapped dataset's


def stripe_texture(rng: np.random.Generator, channels: int, size: int, period: float) -> np.ndarray:
    """(C, H, W) float32 in [0, 1]: stripes of `period` pixels at a random angle, alternating
    smoothly between two random colours."""
    angle, phase = rng.uniform(0.0, np.pi), rng.uniform(0.0, 2 * np.pi)
    colours = rng.uniform(0.0, 1.0, size=(2, channels))
    ys, xs = np.mgrid[0:size, 0:size]
    wave = 0.5 + 0.5 * np.sin(2 * np.pi * (xs * np.cos(angle) + ys * np.sin(angle)) / period + phase)  # (H, W)
    texture = colours[0, :, None, None] * wave + colours[1, :, None, None] * (1 - wave)
    return texture.astype(np.float32)


@gin.configurable(module="mmmae")
class TargetDomain(Dataset):
    """`dataset`'s samples with the video (C, T, H, W) in [0, 1] rendered in another domain:
    background replaced by `stripe_texture` (`stripe_period` pixels), contrast inverted with
    `invert` (v -> 1 - v), Gaussian noise of std `noise` added (clipped to [0, 1]). Deterministic
    per (seed, index). With `unlabelled`, `label` is -1. Other keys and modalities are unchanged.
    """

    def __init__(self, dataset: Dataset = gin.REQUIRED, stripe_period: float = 3.0, invert: bool = True,
                 noise: float = 0.05, unlabelled: bool = False, seed: int = 0):
        if stripe_period <= 0 or noise < 0:
            raise ValueError(f"TargetDomain: stripe_period = {stripe_period}, noise = {noise}; need stripe_period > 0 "
                             "and noise >= 0")
        self.dataset, self.stripe_period, self.invert = dataset, stripe_period, invert
        self.noise, self.unlabelled, self.seed = noise, unlabelled, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        sample = dict(self.dataset[index])
        video = sample["video"]
        channels, _, size, _ = video.shape
        rng = np.random.default_rng([self.seed, _DOMAIN_KEY, index])
        background = einops.rearrange(torch.from_numpy(stripe_texture(rng, channels, size, self.stripe_period)),
                                      "c h w -> c 1 h w")
        shifted = torch.where(sample["digit_mask"][None], video, background)
        if self.invert:
            shifted = 1 - shifted
        noise = torch.from_numpy(rng.standard_normal(video.shape).astype(np.float32)) * self.noise
        present = sample.get("video_present", torch.tensor(True))
        sample["video"] = (shifted + noise).clamp(0, 1) if present else video
        if self.unlabelled:
            sample["label"] = torch.full_like(sample["label"], -1)
        return sample


@gin.configurable(module="mmmae")
def joined(datasets: Sequence[Dataset] = gin.REQUIRED) -> ConcatDataset:
    """The datasets one after another (torch's ConcatDataset), e.g. a source and an unlabelled
    target domain pretrained on together: `pretrain.dataset = @joined`."""
    return ConcatDataset(list(datasets))
