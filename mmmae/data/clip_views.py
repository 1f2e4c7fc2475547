"""Three views of one clip (CrossVideoMAE): the clip, an augmented copy of it, one of its frames.

`ClipViews` takes any dataset whose samples hold a clip `source` (C, T, H, W) in [0, 1] and
returns, for keys (clip, augmented, frame):
  keys[0]  (C, T, H, W)  the clip as it is
  keys[1]  (C, T, H, W)  the clip through ONE random resized crop (area share in `area`, aspect in
                         `ratio`) and a horizontal flip with probability `flip`, for every frame,
                         resized back to (H, W) (data/transforms.py's RandomResizedCrop, HorizontalFlip)
  keys[2]  (C, 1, H, W)  one frame of the clip, uniform over its T frames
plus `{keys[1]}_box` (4,) float32 (top, left, height, width) of the crop in clip pixels,
`{keys[1]}_flipped` () bool, `{keys[2]}_frame` () int64, the sample's scalar side channels, and
`{key}_present` for each key copied from `{source}_present` when the sample has it. Sample i
draws from np.random.SeedSequence([seed, i]): the same views on every call.
"""

import einops
import gin
import numpy as np
import torch
from torch.utils.data import Dataset

from mmmae.data.transforms import HorizontalFlip, RandomResizedCrop, VideoTransform
from mmmae.data.view_pairs import check_range, clip_of, passthrough


@gin.configurable(module="mmmae")
class ClipViews(Dataset):
    """CrossVideoMAE's clip, augmented clip and sampled frame (module docstring)."""

    def __init__(self, dataset: Dataset = gin.REQUIRED, area: tuple[float, float] = (0.5, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3), flip: float = 0.5,
                 keys: tuple[str, str, str] = ("video", "video_aug", "frame"), source: str = "video", seed: int = 0):
        keys = tuple(keys)
        if len(keys) != 3 or len(set(keys)) != 3:
            raise ValueError(f"ClipViews.keys = {keys}: need three distinct names (clip, augmented clip, frame)")
        if not 0 <= flip <= 1:
            raise ValueError(f"ClipViews.flip = {flip}: need a probability in [0, 1]")
        self.area = check_range("ClipViews", "area", area, 0.0, 1.0)
        self.ratio = check_range("ClipViews", "ratio", ratio, 0.0, float("inf"))
        self.dataset, self.flip, self.keys, self.source, self.seed = dataset, flip, keys, source, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        sample = self.dataset[index]
        clip = clip_of("ClipViews", sample, self.source)
        frames, height, width = clip.shape[1:]
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, index]))
        frame = int(rng.integers(frames))
        augment = VideoTransform([RandomResizedCrop((height, width), self.area, self.ratio), HorizontalFlip(self.flip)])
        augmented, info = augment(einops.rearrange(clip, "c t h w -> t c h w"), rng)
        clip_key, augmented_key, frame_key = self.keys
        out = passthrough(sample, self.source, self.keys)
        out[clip_key] = clip.clone()
        out[augmented_key] = augmented.clamp(0, 1)
        out[f"{augmented_key}_box"] = torch.tensor(info["box"], dtype=torch.float32)
        out[f"{augmented_key}_flipped"] = torch.tensor(info["flipped"])
        out[frame_key] = clip[:, frame : frame + 1].clone()
        out[f"{frame_key}_frame"] = torch.tensor(frame, dtype=torch.int64)
        return out
