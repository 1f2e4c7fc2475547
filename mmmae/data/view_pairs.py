"""Two views of one clip, as two single-frame modalities (SiamMAE, CropMAE).

Both wrappers take any dataset whose samples hold a clip `source` (C, T, H, W) and return
keys[0] and keys[1], each (C, 1, H', W') in [0, 1], plus the sample's scalar side channels
(label, index, ... : 0-d tensors, numbers, strings) passed through, `{key}_present` copied from
`{source}_present` when the sample has it, and `{key}_frame` () int64, the frame each view comes
from. Sample i draws from np.random.SeedSequence([seed, i]): the same views on every call.
"""

import math

import gin
import numpy as np
import torch
from torch.utils.data import Dataset

from mmmae.data.transforms import random_resized_box


def passthrough(sample: dict, source: str, keys: tuple[str, str]) -> dict:
    """The sample's scalar side channels, and each view's presence flag."""
    out = {k: v for k, v in sample.items()
           if isinstance(v, (int, float, str)) or (isinstance(v, torch.Tensor) and v.ndim == 0)}
    if f"{source}_present" in sample:
        out.update({f"{key}_present": sample[f"{source}_present"] for key in keys})
    return out


def clip_of(owner: str, sample: dict, source: str) -> torch.Tensor:
    clip = sample.get(source)
    if not isinstance(clip, torch.Tensor) or clip.ndim != 4:
        got = tuple(clip.shape) if isinstance(clip, torch.Tensor) else type(clip).__name__
        raise ValueError(f"{owner} needs sample[{source!r}] as a clip (C, T, H, W); got {got} "
                         f"(sample keys: {sorted(sample)})")
    return clip


def _check_keys(owner: str, keys) -> tuple[str, str]:
    keys = tuple(keys)
    if len(keys) != 2 or keys[0] == keys[1]:
        raise ValueError(f"{owner}.keys = {keys}: need two distinct names")
    return keys


def check_range(owner: str, binding: str, bounds, low: float, high: float) -> tuple[float, float]:
    bounds = tuple(float(b) for b in bounds)
    if len(bounds) != 2 or not low < bounds[0] <= bounds[1] <= high:
        raise ValueError(f"{owner}.{binding} = {bounds}: need ({low} <) min <= max (<= {high})")
    return bounds


@gin.configurable(module="mmmae")
class FramePairs(Dataset):
    """SiamMAE's pair: two frames of one clip, `gap` frames apart, the earlier one first.

    gap ~ U{lo, ..., hi} with lo = min(min_gap, T-1), hi = min(max_gap, T-1) (the clip length
    bounds the range; a one-frame clip gives the same frame twice); the first frame is uniform
    over the T - gap valid starts. (The CropMAE repository's `sample_frames` draws the gap from
    [min_gap, max_gap) — its upper bound is exclusive.)
    """

    def __init__(self, dataset: Dataset = gin.REQUIRED, min_gap: int = 4, max_gap: int = 48,
                 keys: tuple[str, str] = ("view1", "view2"), source: str = "video", seed: int = 0):
        if not 0 <= min_gap <= max_gap:
            raise ValueError(f"FramePairs.min_gap = {min_gap}, FramePairs.max_gap = {max_gap}: need 0 <= min <= max")
        self.dataset, self.min_gap, self.max_gap = dataset, min_gap, max_gap
        self.keys, self.source, self.seed = _check_keys("FramePairs", keys), source, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def frames(self, index: int, length: int) -> tuple[int, int]:
        """The two frame indices of sample `index` in a clip of `length` frames."""
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, index]))
        gap = int(rng.integers(min(self.min_gap, length - 1), min(self.max_gap, length - 1) + 1))
        first = int(rng.integers(0, length - gap))
        return first, first + gap

    def __getitem__(self, index: int) -> dict:
        sample = self.dataset[index]
        clip = clip_of("FramePairs", sample, self.source)
        out = passthrough(sample, self.source, self.keys)
        for key, frame in zip(self.keys, self.frames(index, clip.shape[1])):
            out[key] = clip[:, frame : frame + 1].clone()
            out[f"{key}_frame"] = torch.tensor(frame, dtype=torch.int64)
        return out


@gin.configurable(module="mmmae")
class CropPairs(Dataset):
    """CropMAE's GlobalToLocal pair from one frame (uniform over the clip): keys[0] is a random
    resized crop of the frame (area share in `global_area`), keys[1] a random resized crop of
    that global view (area share of it in `local_area`), so the local view lies inside the
    global one. Both are resized (bilinear, antialiased) to `size` (int or (H, W); None: the
    frame's size). Aspect ratios w/h lie in `ratio` for both crops, measured where they are cut.

    Also returns `{key}_box` (4,) float32: (top, left, height, width) of each view in frame
    pixels (the local box mapped back from the global view's pixels).
    Not reproduced: the repository's horizontal flips (p=0.5 per view) and optional colour
    jitter / blur of the global view.
    """

    def __init__(self, dataset: Dataset = gin.REQUIRED, global_area: tuple[float, float] = (0.5, 1.0),
                 local_area: tuple[float, float] = (0.3, 0.6), ratio: tuple[float, float] = (3 / 4, 4 / 3),
                 size: int | tuple[int, int] | None = None, keys: tuple[str, str] = ("view1", "view2"),
                 source: str = "video", seed: int = 0):
        self.global_area = check_range("CropPairs", "global_area", global_area, 0.0, 1.0)
        self.local_area = check_range("CropPairs", "local_area", local_area, 0.0, 1.0)
        self.ratio = check_range("CropPairs", "ratio", ratio, 0.0, math.inf)
        size = (size, size) if isinstance(size, int) else size
        if size is not None and (len(size) != 2 or min(size) < 1):
            raise ValueError(f"CropPairs.size = {size}: need a positive int, (H, W) or None")
        self.dataset, self.size = dataset, None if size is None else tuple(size)
        self.keys, self.source, self.seed = _check_keys("CropPairs", keys), source, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def boxes(self, index: int, frames: int, height: int, width: int) -> tuple[int, tuple, tuple]:
        """Sample `index`'s frame, global box in the frame and local box in the resized global view."""
        out_h, out_w = self.size or (height, width)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, index]))
        frame = int(rng.integers(frames))
        global_box = random_resized_box(rng, height, width, self.global_area, self.ratio)
        return frame, global_box, random_resized_box(rng, out_h, out_w, self.local_area, self.ratio)

    def __getitem__(self, index: int) -> dict:
        from torchvision.transforms.v2 import InterpolationMode
        from torchvision.transforms.v2.functional import resized_crop

        sample = self.dataset[index]
        clip = clip_of("CropPairs", sample, self.source)
        frames, height, width = clip.shape[1:]
        size = list(self.size or (height, width))
        frame, global_box, local_box = self.boxes(index, frames, height, width)
        crop = dict(size=size, interpolation=InterpolationMode.BILINEAR, antialias=True)
        global_view = resized_crop(clip[:, frame], *global_box, **crop).clamp(0, 1)
        local_view = resized_crop(global_view, *local_box, **crop).clamp(0, 1)
        top, left, h, w = global_box
        scale = torch.tensor([h / size[0], w / size[1]] * 2, dtype=torch.float64)
        local_in_frame = torch.tensor(local_box, dtype=torch.float64) * scale + torch.tensor([top, left, 0, 0])
        out = passthrough(sample, self.source, self.keys)
        for key, view, box in zip(self.keys, (global_view, local_view),
                                  (torch.tensor(global_box, dtype=torch.float64), local_in_frame)):
            out[key] = view[:, None]
            out[f"{key}_box"] = box.float()
            out[f"{key}_frame"] = torch.tensor(frame, dtype=torch.int64)
        return out
