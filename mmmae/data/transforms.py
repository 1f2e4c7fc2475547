"""Clip, spectrogram and batch augmentations (gin configurables).

Clip steps work on a clip (T, C, H, W), uint8 or float in [0, 1], apply ONE crop / flip to
every frame, and return `(clip, info)`: what they did, so the dataset can make other
modalities follow (`info["flipped"]`: mirror IMU channels) and side channels align
(`info["box"]`: (top, left, height, width) of the crop in the pixels of the step's input).
:class:`VideoTransform` chains steps and ends in the model's layout, float (C, T, H, W) in
[0, 1]; the tokenizers normalise. Crops, resizes (bilinear, antialiased) and flips are
torchvision.transforms.v2.functional ops.

Randomness comes only from the `rng` argument, an np.random.Generator or a torch.Generator,
so a sample is reproducible from its seed; global RNG state is never read or changed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import einops
import gin
import numpy as np
import torch
import torchaudio
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as F

Rng = np.random.Generator | torch.Generator
Box = tuple[int, int, int, int]  # (top, left, height, width)

# GroupMultiScaleCrop's fixed offsets on a 4x4 grid of steps (row, column): the 5 standard
# ones (corners, centre), then the 8 that `more_fix_crop` adds (edge centres, quarter points).
_FIXED_OFFSETS = ((0, 0), (0, 4), (4, 0), (4, 4), (2, 2))
_MORE_FIXED_OFFSETS = ((2, 0), (2, 4), (4, 2), (0, 2), (1, 1), (1, 3), (3, 1), (3, 3))
_SNAP_PIXELS = 3  # a crop side within this many pixels of the output side becomes exactly it


def numpy_rng(rng: Rng) -> np.random.Generator:
    """`rng` itself if numpy; a torch.Generator seeds a new numpy one from one draw (advancing it)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, torch.Generator):
        return np.random.default_rng(int(torch.randint(2**62, (), generator=rng, device=rng.device)))
    raise TypeError(f"expected an np.random.Generator or a torch.Generator, got {type(rng).__name__}")


def random_resized_box(rng: np.random.Generator, height: int, width: int, area: tuple[float, float],
                       ratio: tuple[float, float], attempts: int = 10) -> tuple[int, int, int, int]:
    """RandomResizedCrop's box (top, left, h, w) inside a height x width image: area share
    ~ U(area), aspect w/h log-uniform in `ratio`; after `attempts` misses, the central crop
    with the aspect clamped into `ratio`."""
    log_ratio = np.log(ratio)
    for _ in range(attempts):
        target = height * width * rng.uniform(*area)
        aspect = math.exp(rng.uniform(*log_ratio))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    w, h = width, height
    if width / height < ratio[0]:
        h = round(width / ratio[0])
    elif width / height > ratio[1]:
        w = round(height * ratio[1])
    return (height - h) // 2, (width - w) // 2, h, w


def _pair(owner: str, size: int | Sequence[int]) -> tuple[int, int]:
    """An int or (H, W) as (H, W), both positive."""
    pair = (size, size) if isinstance(size, int) else tuple(int(s) for s in size)
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"{owner}.size = {size}: need a positive int or (H, W)")
    return pair


def _check_clip(owner: str, clip: torch.Tensor) -> tuple[int, int]:
    """(H, W) of a clip (T, C, H, W), else a ValueError naming the transform."""
    if not isinstance(clip, torch.Tensor) or clip.ndim != 4:
        got = tuple(clip.shape) if isinstance(clip, torch.Tensor) else type(clip).__name__
        raise ValueError(f"{owner} needs a clip (T, C, H, W), got {got}")
    return clip.shape[-2], clip.shape[-1]


def _resized_crop(clip: torch.Tensor, box: Box, size: tuple[int, int]) -> torch.Tensor:
    return F.resized_crop(clip, *box, size=list(size), interpolation=InterpolationMode.BILINEAR, antialias=True)


@gin.configurable(module="mmmae")
class MultiScaleCrop:
    """VideoMAE's GroupMultiScaleCrop (from TSN): one crop for all frames, resized to `size`.

    With b = min(H, W), crop sides are int(b * s) for s in `scales`, each snapped to the output
    side when within 3 pixels of it (and capped at the image); (height, width) is uniform over
    the pairs of scale indices (i, j) with |i - j| <= max_distort. fix_crop: the offset is
    uniform over fixed points, steps of ((H - h) // 4, (W - w) // 4): the 4 corners and the
    centre, plus (more_fix_crop) the 4 edge centres and the 4 quarter points; otherwise uniform
    over all positions. VideoMAE's pretraining uses the defaults except more_fix_crop=True.
    """

    def __init__(self, size: int | tuple[int, int] = gin.REQUIRED, scales: Sequence[float] = (1, .875, .75, .66),
                 max_distort: int = 1, fix_crop: bool = True, more_fix_crop: bool = False):
        if not scales or not all(0 < s <= 1 for s in scales):
            raise ValueError(f"MultiScaleCrop.scales = {scales}: need one or more scales in (0, 1]")
        if max_distort < 0:
            raise ValueError(f"MultiScaleCrop.max_distort = {max_distort}: need >= 0")
        self.size, self.scales = _pair("MultiScaleCrop", size), tuple(float(s) for s in scales)
        self.max_distort, self.fix_crop, self.more_fix_crop = max_distort, fix_crop, more_fix_crop

    def crop_sizes(self, height: int, width: int) -> list[tuple[int, int]]:
        """The (h, w) crops to choose from in a height x width image."""
        sides = [int(min(height, width) * s) for s in self.scales]

        def snap(side: int, out: int, limit: int) -> int:
            return min(out if abs(side - out) < _SNAP_PIXELS else side, limit)

        heights = [snap(s, self.size[0], height) for s in sides]
        widths = [snap(s, self.size[1], width) for s in sides]
        return [(h, w) for i, h in enumerate(heights) for j, w in enumerate(widths) if abs(i - j) <= self.max_distort]

    def offsets(self, height: int, width: int, h: int, w: int) -> list[tuple[int, int]]:
        """The fixed (top, left) offsets of an h x w crop (fix_crop)."""
        grid = _FIXED_OFFSETS + (_MORE_FIXED_OFFSETS if self.more_fix_crop else ())
        step_h, step_w = (height - h) // 4, (width - w) // 4
        return [(row * step_h, col * step_w) for row, col in grid]

    def box(self, rng: Rng, height: int, width: int) -> Box:
        """One crop (top, left, h, w) in a height x width image."""
        rng = numpy_rng(rng)
        choices = self.crop_sizes(height, width)
        h, w = choices[rng.integers(len(choices))]
        if self.fix_crop:
            offsets = self.offsets(height, width, h, w)
            top, left = offsets[rng.integers(len(offsets))]
        else:
            top, left = rng.integers(height - h + 1), rng.integers(width - w + 1)
        return int(top), int(left), h, w

    def __call__(self, clip: torch.Tensor, rng: Rng) -> tuple[torch.Tensor, dict]:
        box = self.box(rng, *_check_clip("MultiScaleCrop", clip))
        return _resized_crop(clip, box, self.size), {"box": box}


@gin.configurable(module="mmmae")
class RandomResizedCrop:
    """Inception-style crop, one for all frames, resized to `size`: area share ~ U(scale), aspect
    w/h log-uniform in `ratio` (10 tries, then the centre crop with the aspect clamped)."""

    def __init__(self, size: int | tuple[int, int] = gin.REQUIRED, scale: tuple[float, float] = (0.08, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3)):
        if len(scale) != 2 or not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(f"RandomResizedCrop.scale = {scale}: need 0 < min <= max <= 1")
        if len(ratio) != 2 or not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"RandomResizedCrop.ratio = {ratio}: need 0 < min <= max")
        self.size, self.scale, self.ratio = _pair("RandomResizedCrop", size), tuple(scale), tuple(ratio)

    def __call__(self, clip: torch.Tensor, rng: Rng) -> tuple[torch.Tensor, dict]:
        height, width = _check_clip("RandomResizedCrop", clip)
        box = random_resized_box(numpy_rng(rng), height, width, self.scale, self.ratio)
        return _resized_crop(clip, box, self.size), {"box": box}


@gin.configurable(module="mmmae")
class CenterCrop:
    """Evaluation crop: resize the short side to `short_side` (default max(size), so the crop
    fits), then crop `size` from the centre; info["box"] is that crop mapped back to the input's
    pixels (rounded). Deterministic; `rng` is accepted and unused."""

    def __init__(self, size: int | tuple[int, int] = gin.REQUIRED, short_side: int | None = None):
        self.size = _pair("CenterCrop", size)
        self.short_side = max(self.size) if short_side is None else short_side
        if self.short_side < max(self.size):
            raise ValueError(f"CenterCrop.short_side = {short_side}: need >= the crop's sides {self.size}")

    def __call__(self, clip: torch.Tensor, rng: Rng | None = None) -> tuple[torch.Tensor, dict]:
        height, width = _check_clip("CenterCrop", clip)
        scale = self.short_side / min(height, width)
        resized = F.resize(clip, [self.short_side], interpolation=InterpolationMode.BILINEAR, antialias=True)
        out_h, out_w = resized.shape[-2:]
        top, left = (out_h - self.size[0]) // 2, (out_w - self.size[1]) // 2
        box = (round(top / scale), round(left / scale), round(self.size[0] / scale), round(self.size[1] / scale))
        return F.center_crop(resized, list(self.size)), {"box": box}


@gin.configurable(module="mmmae")
class HorizontalFlip:
    """Mirror every frame left-right with probability p; info["flipped"] says whether it did."""

    def __init__(self, p: float = 0.5):
        if not 0 <= p <= 1:
            raise ValueError(f"HorizontalFlip.p = {p}: need 0 <= p <= 1")
        self.p = p

    def __call__(self, clip: torch.Tensor, rng: Rng) -> tuple[torch.Tensor, dict]:
        _check_clip("HorizontalFlip", clip)
        flipped = bool(numpy_rng(rng).random() < self.p)
        return (F.horizontal_flip(clip) if flipped else clip), {"flipped": flipped}


@gin.configurable(module="mmmae")
class VideoTransform:
    """Apply `steps` in order to a clip (T, C, H, W) uint8 or float, then return float32
    (C, T, H, W) in [0, 1] (uint8 / 255) and the steps' merged info: "flipped" (always present;
    an odd number of flips), "box" (the last crop's, in its input's pixels) if any step cropped."""

    def __init__(self, steps: Sequence = ()):
        self.steps = list(steps)

    def __call__(self, clip: torch.Tensor, rng: Rng) -> tuple[torch.Tensor, dict]:
        _check_clip("VideoTransform", clip)
        info = {"flipped": False}
        for step in self.steps:
            clip, done = step(clip, rng)
            flipped = info["flipped"] ^ done.pop("flipped", False)
            info.update(done, flipped=flipped)
        video = F.to_dtype(clip, torch.float32, scale=True)
        return einops.rearrange(video, "t c h w -> c t h w"), info


@gin.configurable(module="mmmae")
class SpecAugment:
    """SpecAugment on a raw fbank with torchaudio's FrequencyMasking then TimeMasking, `masks`
    times each: every mask sets a band of width ~ U{0, ..., param - 1} (whole rows or columns) to
    `mask_value`, the same band across any leading dims. Layout (..., T, F), time first, as
    `kaldi_fbank` returns and AudioTokenizer takes (time_first=False: (..., F, T)). Defaults are
    AudioMAE's fine-tuning constants (freqm 48, timem 192 on a 1024 x 128 fbank), masking before
    normalisation as AudioMAE does.
    """

    def __init__(self, freq_mask: int = 48, time_mask: int = 192, masks: int = 1, mask_value: float = 0.0,
                 time_first: bool = True):
        if min(freq_mask, time_mask) < 0 or masks < 0:
            raise ValueError(f"SpecAugment: freq_mask = {freq_mask}, time_mask = {time_mask}, masks = {masks}: "
                             "need >= 0")
        self.freq = torchaudio.transforms.FrequencyMasking(freq_mask)
        self.time = torchaudio.transforms.TimeMasking(time_mask)
        self.freq_mask, self.time_mask, self.masks = freq_mask, time_mask, masks
        self.mask_value, self.time_first = mask_value, time_first

    def __call__(self, fbank: torch.Tensor, rng: Rng) -> torch.Tensor:
        spec = fbank.transpose(-1, -2) if self.time_first else fbank  # (..., F, T)
        if spec.ndim < 2 or self.freq_mask >= spec.shape[-2] or self.time_mask >= spec.shape[-1]:
            raise ValueError(f"SpecAugment(freq_mask={self.freq_mask}, time_mask={self.time_mask}) needs an fbank "
                             f"with more bands and steps than that, got (F, T) = {tuple(spec.shape[-2:])}")
        seed = int(numpy_rng(rng).integers(2**62))
        with torch.random.fork_rng(devices=[]):  # torchaudio draws from the global RNG: seed a private copy
            torch.manual_seed(seed)
            for _ in range(self.masks):
                spec = self.time(self.freq(spec, self.mask_value), self.mask_value)
        return spec.transpose(-1, -2) if self.time_first else spec


def _cutmix_box(rng: np.random.Generator, lam: float, height: int, width: int) -> Box:
    """CutMix's box: sides sqrt(1 - lam) of the image's, centre uniform, clipped to the image."""
    cut_h, cut_w = int(height * math.sqrt(1 - lam)), int(width * math.sqrt(1 - lam))
    cy, cx = int(rng.integers(height)), int(rng.integers(width))
    top, bottom = np.clip([cy - cut_h // 2, cy + cut_h // 2], 0, height)
    left, right = np.clip([cx - cut_w // 2, cx + cut_w // 2], 0, width)
    return int(top), int(left), int(bottom - top), int(right - left)


@gin.configurable(module="mmmae")
class Mixup:
    """Batch-level Mixup / CutMix with label-smoothed soft labels (timm's, as VideoMAE fine-tunes).

    Sample i is mixed with sample B-1-i (the batch reversed). With probability `prob` a batch is
    mixed: CutMix (Beta(cutmix_alpha)) with probability `switch_prob` when both alphas are > 0,
    else Mixup (Beta(alpha)). Mixup: every key in `keys` becomes lam * x + (1 - lam) * partner.
    CutMix: clips (B, C, T, H, W) get the partner's pixels in one box, the same for every frame
    and channel, and lam becomes the share outside the box; other keys (waveform (B, S) or fbank)
    are mixed linearly with that lam. Keys missing from the batch are skipped; mixed keys must be
    float. Returns a new dict: the batch with the keys mixed, "soft_label" (B, num_classes)
    float32 = lam * smooth(label) + (1 - lam) * smooth(partner's label), where smooth puts
    1 - label_smoothing + label_smoothing / num_classes on the class and label_smoothing /
    num_classes elsewhere (each row sums to 1), and "mix_lambda" () float32 (1 when unmixed).
    """

    def __init__(self, alpha: float = 0.8, cutmix_alpha: float = 1.0, prob: float = 1.0, label_smoothing: float = 0.1,
                 num_classes: int = gin.REQUIRED, switch_prob: float = 0.5, keys: Sequence[str] = ("video", "audio")):
        if alpha < 0 or cutmix_alpha < 0 or alpha == cutmix_alpha == 0:
            raise ValueError(f"Mixup: alpha = {alpha}, cutmix_alpha = {cutmix_alpha}: need >= 0, one of them > 0")
        for name, value in (("prob", prob), ("label_smoothing", label_smoothing), ("switch_prob", switch_prob)):
            if not 0 <= value <= 1:
                raise ValueError(f"Mixup.{name} = {value}: need 0 <= {name} <= 1")
        if num_classes < 1:
            raise ValueError(f"Mixup.num_classes = {num_classes}: need >= 1")
        self.alpha, self.cutmix_alpha, self.prob, self.switch_prob = alpha, cutmix_alpha, prob, switch_prob
        self.label_smoothing, self.num_classes, self.keys = label_smoothing, num_classes, tuple(keys)

    def soft_labels(self, label: torch.Tensor, lam: float) -> torch.Tensor:
        """(B,) class ids -> (B, num_classes) smoothed one-hot, mixed with the reversed batch's."""
        if label.ndim != 1 or (label < 0).any() or (label >= self.num_classes).any():
            raise ValueError(f"Mixup needs a class id in [0, {self.num_classes}) for every sample, "
                             f"got {label.tolist()}")
        off = self.label_smoothing / self.num_classes
        smooth = torch.full((len(label), self.num_classes), off, device=label.device)
        smooth.scatter_(1, label[:, None], 1 - self.label_smoothing + off)
        return lam * smooth + (1 - lam) * smooth.flip(0)

    def _mode(self, rng: np.random.Generator) -> str | None:
        if rng.random() >= self.prob:
            return None
        if self.alpha > 0 and self.cutmix_alpha > 0:
            return "cutmix" if rng.random() < self.switch_prob else "mixup"
        return "cutmix" if self.cutmix_alpha > 0 else "mixup"

    def __call__(self, batch: dict, rng: Rng) -> dict:
        rng = numpy_rng(rng)
        keys = [key for key in self.keys if key in batch]
        for key in keys:
            if not torch.is_floating_point(batch[key]):
                raise ValueError(f"Mixup mixes float tensors; batch[{key!r}] is {batch[key].dtype}")
        out, mode, lam = dict(batch), self._mode(rng), 1.0
        if mode == "mixup":
            lam = float(rng.beta(self.alpha, self.alpha))
        elif mode == "cutmix":
            lam = float(rng.beta(self.cutmix_alpha, self.cutmix_alpha))
            clips = [key for key in keys if batch[key].ndim == 5]
            sizes = {tuple(batch[key].shape[-2:]) for key in clips}
            if len(sizes) > 1:
                raise ValueError(f"Mixup: CutMix needs one frame size for all clips {clips}, got {sorted(sizes)}")
            if clips:
                height, width = sizes.pop()
                top, left, h, w = _cutmix_box(rng, lam, height, width)
                lam = 1 - h * w / (height * width)
                for key in clips:
                    mixed = batch[key].clone()
                    mixed[..., top:top + h, left:left + w] = batch[key].flip(0)[..., top:top + h, left:left + w]
                    out[key] = mixed
                keys = [key for key in keys if key not in clips]
        if mode is not None:
            for key in keys:
                out[key] = lam * batch[key] + (1 - lam) * batch[key].flip(0)
        out["soft_label"] = self.soft_labels(batch["label"], lam)
        out["mix_lambda"] = torch.tensor(lam, dtype=torch.float32)
        return out
