"""MovingDigits: the built-in synthetic video dataset.

Real handwritten digits (scikit-learn's bundled ``load_digits``: 1797 8x8 images, no download)
move in a straight line over a static textured background. Each sample is one latent
:class:`DigitEvent` drawn by :func:`sample_event`; renderers such as :func:`render_video` turn
that event into one modality, so further modalities (audio, IMU, a caption) can be rendered
from the SAME event. Everything is deterministic per (seed, split, index).

Conventions: image coordinates, x grows to the right and y grows downwards; a position is the
digit's top-left corner (x, y) in pixels. Direction class ``d`` moves along the angle
``d * 45`` degrees counter-clockwise *as seen on screen*, i.e. along the unit vector
``(cos a, -sin a)``: 0 right, 1 up-right, 2 up, 3 up-left, 4 left, 5 down-left, 6 down,
7 down-right (see ``DIRECTION_VECTORS``).
"""

from __future__ import annotations

import dataclasses
import functools
import operator

import einops
import gin
import numpy as np
import torch

SPLITS = ("train", "val", "test")
NUM_DIRECTIONS = 8

_ANGLES = np.deg2rad(np.arange(NUM_DIRECTIONS) * 360 / NUM_DIRECTIONS)
# (NUM_DIRECTIONS, 2) unit (dx, dy) per direction class; rounded so axis-aligned moves are exact.
DIRECTION_VECTORS = np.round(np.stack([np.cos(_ANGLES), -np.sin(_ANGLES)], axis=-1), 12) + 0.0
DIRECTION_VECTORS.flags.writeable = False

_SPLIT_FRACTIONS = (0.70, 0.15)  # train, val; test takes the rest
_SPLIT_PERMUTATION_SEED = 1797  # constant: the splits never depend on the dataset's seed
_BACKGROUND_WAVES = 4
_BACKGROUND_MAX = 0.5
_MIN_BRIGHTNESS = 0.6  # digit colour channels lie in [0.6, 1), above the background's [0, 0.5]


@functools.cache
def load_digit_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits, loaded on first use: images (1797, 8, 8) float32 in [0, 1], labels (1797,) int64."""
    from sklearn.datasets import load_digits  # imported lazily: sklearn is slow to import

    digits = load_digits()
    images, labels = (digits.images / 16.0).astype(np.float32), digits.target.astype(np.int64)
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


@functools.cache
def split_image_indices(split: str) -> np.ndarray:
    """Indices into :func:`load_digit_images` of ``split``'s images: a fixed 70/15/15 cut, disjoint across splits."""
    _check_split(split)
    num_images = len(load_digit_images()[1])
    permutation = np.random.default_rng(_SPLIT_PERMUTATION_SEED).permutation(num_images)
    cuts = np.round(np.cumsum(_SPLIT_FRACTIONS) * num_images).astype(int)
    indices = np.split(permutation, cuts)[SPLITS.index(split)]
    indices.flags.writeable = False
    return indices


@functools.cache
def _digit_alphas(digit_size: int) -> np.ndarray:
    """All digits resized bilinearly to (1797, digit_size, digit_size), each normalised to max 1."""
    images = einops.rearrange(torch.tensor(load_digit_images()[0]), "n h w -> n 1 h w")
    scaled = torch.nn.functional.interpolate(images, size=(digit_size, digit_size), mode="bilinear", align_corners=False)
    scaled = scaled / scaled.amax(dim=(2, 3), keepdim=True)
    alphas = einops.rearrange(scaled.clamp(0, 1), "n 1 h w -> n h w").numpy()
    alphas.flags.writeable = False
    return alphas


@dataclasses.dataclass(frozen=True)
class DigitEvent:
    """The latent content of one sample, shared by every modality rendered from it.

    image_index: index into :func:`load_digit_images`; label: its digit class 0..9.
    start: (x, y) top-left position at frame 0 in pixels (sub-pixel; rendering rounds per frame).
    velocity: (dx, dy) in pixels per frame, ``speed * DIRECTION_VECTORS[direction]``.
    direction: class 0..NUM_DIRECTIONS-1 (module docstring); speed: pixels per frame.
    color: one value per channel in [0.6, 1); background_seed: seeds :func:`render_background`.
    """

    image_index: int
    label: int
    start: tuple[float, float]
    velocity: tuple[float, float]
    direction: int
    speed: float
    color: tuple[float, ...]
    background_seed: int

    def positions(self, frames: int) -> np.ndarray:
        """Rendered top-left (x, y) per frame, (frames, 2) int64: ``start + t * velocity`` rounded."""
        t = np.arange(frames)[:, None]
        return np.rint(np.asarray(self.start) + t * np.asarray(self.velocity)).astype(np.int64)


def sample_event(
    rng: np.random.Generator,
    split: str = "train",
    *,
    frames: int = 8,
    size: int = 32,
    digit_size: int = 12,
    channels: int = 3,
    min_speed: float = 0.5,
    max_speed: float = 2.0,
) -> DigitEvent:
    """Draw one event of ``split`` whose digit stays inside the size x size frame for all ``frames``.

    The speed is uniform in [min_speed, max_speed], lowered only where the path cannot
    otherwise fit (e.g. size close to digit_size). Assumes size >= digit_size.
    """
    images = split_image_indices(split)
    image_index = int(images[rng.integers(len(images))])
    direction = int(rng.integers(NUM_DIRECTIONS))
    unit = DIRECTION_VECTORS[direction]
    room = size - digit_size  # free pixels along each axis
    speed = float(rng.uniform(min_speed, max_speed))
    if frames > 1:
        speed = min(speed, room / ((frames - 1) * np.abs(unit).max()))
    travel = (frames - 1) * speed * unit  # (2,) displacement from the first to the last frame
    start = rng.uniform(np.maximum(0.0, -travel), room - np.maximum(0.0, travel))
    return DigitEvent(
        image_index=image_index,
        label=int(load_digit_images()[1][image_index]),
        start=(float(start[0]), float(start[1])),
        velocity=(float(speed * unit[0]), float(speed * unit[1])),
        direction=direction,
        speed=speed,
        color=tuple(float(c) for c in rng.uniform(_MIN_BRIGHTNESS, 1.0, size=channels)),
        background_seed=int(rng.integers(2**63)),
    )


def render_background(seed: int, channels: int, size: int) -> np.ndarray:
    """Static texture (C, H, W) float32 in [0, 0.5]: per channel a random mix of low-frequency sinusoids."""
    rng = np.random.default_rng(seed)
    frequencies = rng.uniform(-3.0, 3.0, size=(_BACKGROUND_WAVES, 2))  # cycles per frame along (x, y)
    phases = rng.uniform(0.0, 2 * np.pi, size=_BACKGROUND_WAVES)
    weights = rng.dirichlet(np.ones(_BACKGROUND_WAVES), size=channels)  # (C, K), rows sum to 1
    gains = rng.uniform(0.4, 1.0, size=channels)
    grid = np.arange(size) / size
    angle = (
        einops.rearrange(frequencies[:, 0], "k -> k 1 1") * grid[None, None, :]
        + einops.rearrange(frequencies[:, 1], "k -> k 1 1") * grid[None, :, None]
        + einops.rearrange(phases, "k -> k 1 1")
    )
    waves = 0.5 + 0.5 * np.sin(2 * np.pi * angle)  # (K, H, W) in [0, 1]
    background = np.einsum("ck,khw->chw", weights * gains[:, None] * _BACKGROUND_MAX, waves)
    return background.astype(np.float32)


def render_video(event: DigitEvent, *, frames: int, size: int, digit_size: int) -> dict[str, np.ndarray]:
    """Render ``event`` as a clip; C = len(event.color), T = frames, H = W = size.

    Returns numpy arrays:
      video (C, T, H, W) float32 in [0, 1]: the coloured digit alpha-blended over the background;
      digit_mask (T, H, W) bool: pixels where the digit's alpha > 0.5;
      flow (2, T, H, W) float32: forward flow (dx, dy) from frame t to t+1 on digit_mask[t], 0
        elsewhere (the background is static). The last frame continues the straight path one
        frame further, i.e. it carries the displacement to where the digit would be at frame T;
      position (T, 2) float32: the rendered (integer) top-left (x, y) per frame.
    """
    positions = event.positions(frames + 1)  # one extra frame for the last frame's flow
    x, y = positions[:frames, 0], positions[:frames, 1]
    offsets = np.arange(digit_size)
    alpha = np.zeros((frames, size, size), np.float32)
    alpha[
        einops.rearrange(np.arange(frames), "t -> t 1 1"),
        einops.rearrange(y[:, None] + offsets, "t i -> t i 1"),
        einops.rearrange(x[:, None] + offsets, "t j -> t 1 j"),
    ] = _digit_alphas(digit_size)[event.image_index]
    background = einops.rearrange(render_background(event.background_seed, len(event.color), size), "c h w -> c 1 h w")
    color = einops.rearrange(np.asarray(event.color, np.float32), "c -> c 1 1 1")
    mask = alpha > 0.5
    displacement = einops.rearrange(np.diff(positions, axis=0).astype(np.float32), "t xy -> xy t 1 1")
    return {
        "video": background * (1 - alpha) + color * alpha,
        "digit_mask": mask,
        "flow": np.where(mask, displacement, np.float32(0)),
        "position": positions[:frames].astype(np.float32),
    }


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


@gin.configurable(module="mmmae")
class MovingDigits(torch.utils.data.Dataset):
    """Short clips of handwritten digits moving over a textured background, generated on the fly.

    Sample ``i`` is drawn from ``np.random.SeedSequence([seed, split_id, i])``, so it is
    bit-identical across calls, dataset objects and DataLoader workers. The splits use disjoint
    digit images (:func:`split_image_indices`). A sample is a dict of tensors:
      video (C, T, H, W) float32 in [0, 1]; label () int64 digit class 0..9;
      direction () int64 class 0..NUM_DIRECTIONS-1 (0 right, counter-clockwise on screen, y down);
      flow (2, T, H, W) float32 forward flow (dx, dy) in pixels on the digit, 0 on the background;
      digit_mask (T, H, W) bool; position (T, 2) float32 top-left (x, y); index () int64.
    See :func:`render_video` for the details of flow and position.
    """

    def __init__(
        self,
        split: str = "train",
        num_samples: int = 4096,
        frames: int = 8,
        size: int = 32,
        digit_size: int = 12,
        channels: int = 3,
        min_speed: float = 0.5,
        max_speed: float = 2.0,
        seed: int = 0,
    ):
        _check_split(split)
        for name, value in dict(num_samples=num_samples, frames=frames, digit_size=digit_size, channels=channels).items():
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if size < digit_size:
            raise ValueError(f"size ({size}) must be >= digit_size ({digit_size}) so the digit fits in the frame")
        if not 0 < min_speed <= max_speed < float("inf"):
            raise ValueError(f"need 0 < min_speed <= max_speed < inf, got min_speed={min_speed}, max_speed={max_speed}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.split, self.num_samples, self.seed = split, num_samples, seed
        self.frames, self.size, self.digit_size, self.channels = frames, size, digit_size, channels
        self.min_speed, self.max_speed = min_speed, max_speed
        split_image_indices(split)  # load the digits now, so forked DataLoader workers inherit them

    def __len__(self) -> int:
        return self.num_samples

    def event(self, index: int) -> DigitEvent:
        """The latent event of sample ``index`` (what every modality of that sample is rendered from)."""
        index = operator.index(index)
        if not 0 <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for MovingDigits of length {self.num_samples}")
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, SPLITS.index(self.split), index]))
        return sample_event(
            rng,
            self.split,
            frames=self.frames,
            size=self.size,
            digit_size=self.digit_size,
            channels=self.channels,
            min_speed=self.min_speed,
            max_speed=self.max_speed,
        )

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        event = self.event(index)
        video = render_video(event, frames=self.frames, size=self.size, digit_size=self.digit_size)
        sample = {key: torch.from_numpy(value) for key, value in video.items()}
        sample["label"] = torch.tensor(event.label, dtype=torch.int64)
        sample["direction"] = torch.tensor(event.direction, dtype=torch.int64)
        sample["index"] = torch.tensor(operator.index(index), dtype=torch.int64)
        return sample
