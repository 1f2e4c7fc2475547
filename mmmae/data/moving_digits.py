"""MovingDigits: the built-in synthetic multimodal dataset.

Real handwritten digits (scikit-learn's bundled ``load_digits``: 1797 8x8 images, no download)
move along a straight line over a static textured background, their speed surging
periodically, while they sway (rotate in-plane) at a rate set by their class. Each sample is
one latent :class:`DigitEvent` drawn by :func:`sample_event`; renderers turn that SAME event
into each modality: :func:`render_video` here, ``render_audio``, ``render_imu`` and the caption
in their own files. Everything is deterministic per (seed, split, index).

Conventions: image coordinates, x grows to the right and y grows downwards; a position is the
digit's top-left corner (x, y) in pixels. Direction class ``d`` moves along the angle
``d * 45`` degrees counter-clockwise *as seen on screen*, i.e. along the unit vector
``(cos a, -sin a)``: 0 right, 1 up-right, 2 up, 3 up-left, 4 left, 5 down-left, 6 down,
7 down-right (see ``DIRECTION_VECTORS``). Time: frame t is at t / fps seconds. Physics
(audio, IMU) reads one pixel as 1 cm (``METRES_PER_PIXEL``).
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
import operator
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import NamedTuple

import einops
import gin
import numpy as np
import torch

from mmmae.data.captions import caption, speed_class
from mmmae.data.render_audio import render_audio
from mmmae.data.render_imu import DEFAULT_IMU_RATES, imu_lengths, render_imu
from mmmae.tokenizers.text import encode_captions, load_text_tokenizer

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
METRES_PER_PIXEL = 0.01
MODALITIES = ("video", "audio", "imu", "text")
SWAY_BASE_HZ, SWAY_STEP_HZ = 0.5, 0.15  # sway frequency of class c: 0.5 + 0.15 c Hz


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
    scaled = torch.nn.functional.interpolate(images, size=(digit_size, digit_size), mode="bilinear",
                                             align_corners=False)
    scaled = scaled / scaled.amax(dim=(2, 3), keepdim=True)
    alphas = einops.rearrange(scaled.clamp(0, 1), "n 1 h w -> n h w").numpy()
    alphas.flags.writeable = False
    return alphas


class Motion(NamedTuple):
    """Analytic kinematics at N times, SI units, in the physics frame: x right, y up, z out of the
    screen towards the viewer (right-handed; y is the image's -y). Rotation is counter-clockwise
    as seen on screen, about the digit's centre.

    velocity, acceleration (N, 2): of the digit's centre in m/s and m/s^2;
    angle (rad), angular_velocity (rad/s), angular_acceleration (rad/s^2) (N,): the sway.
    """

    velocity: np.ndarray
    acceleration: np.ndarray
    angle: np.ndarray
    angular_velocity: np.ndarray
    angular_acceleration: np.ndarray


@dataclasses.dataclass(frozen=True)
class DigitEvent:
    """The latent content of one sample, shared by every modality rendered from it.

    image_index: index into :func:`load_digit_images`; label: its digit class 0..9.
    start: (x, y) top-left position at frame 0 in pixels (sub-pixel; rendering rounds per frame).
    velocity: mean (dx, dy) in pixels per frame, ``speed * DIRECTION_VECTORS[direction]``.
    direction: class 0..NUM_DIRECTIONS-1 (module docstring); speed: mean speed, pixels per frame.
    color: one value per channel in [0.6, 1); background_seed: seeds :func:`render_background`.
    fps: frames per second (frame t is at t / fps seconds).
    surge, surge_period: the speed along the direction is ``speed * fps * (1 + surge * cos(2 pi t
      / surge_period))`` pixels per second: fastest at frame 0, so the sign of the acceleration
      tells a direction from its opposite; surge_period (s) is the clip's duration divided by
      ``surge_cycles`` (:func:`sample_event`).
    sway_amplitude (rad), sway_frequency (Hz, set by the class: :func:`sway_frequency`),
      sway_phase (rad): the digit rotates about its centre by ``sway_amplitude * sin(2 pi
      sway_frequency t + sway_phase)``. The sensors (IMU) measure it; the video shows it only
      with ``MovingDigits.render_sway`` (by default the digit's pixels never rotate).
    noise_seed: seeds the sensor and audio noise.
    """

    image_index: int
    label: int
    start: tuple[float, float]
    velocity: tuple[float, float]
    direction: int
    speed: float
    color: tuple[float, ...]
    background_seed: int
    fps: float
    surge: float
    surge_period: float
    sway_amplitude: float
    sway_frequency: float
    sway_phase: float
    noise_seed: int

    @property
    def tint(self) -> np.ndarray:
        """The colour rescaled from its range [0.6, 1) to [0, 1), (C,) float64."""
        return (np.asarray(self.color) - _MIN_BRIGHTNESS) / (1 - _MIN_BRIGHTNESS)

    def path(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Distance (pixels), speed (pixels/s) and acceleration (pixels/s^2) along the direction at times t (s)."""
        mean = self.speed * self.fps
        return tuple(mean * value for value in surge_profile(t, self.surge, self.surge_period))

    def positions(self, frames: int) -> np.ndarray:
        """Rendered top-left (x, y) per frame, (frames, 2) int64: the surged path at t / fps, rounded."""
        distance = self.path(np.arange(frames) / self.fps)[0]
        return np.rint(np.asarray(self.start) + distance[:, None] * DIRECTION_VECTORS[self.direction]).astype(np.int64)

    def motion(self, t: np.ndarray) -> Motion:
        """Kinematics at times t (N,) in seconds, see :class:`Motion`."""
        _, speed, acceleration = self.path(t)
        unit = DIRECTION_VECTORS[self.direction] * (1, -1) * METRES_PER_PIXEL  # image y down -> physics y up
        omega = 2 * np.pi * self.sway_frequency
        phase = omega * t + self.sway_phase
        return Motion(
            velocity=speed[:, None] * unit,
            acceleration=acceleration[:, None] * unit,
            angle=self.sway_amplitude * np.sin(phase),
            angular_velocity=self.sway_amplitude * omega * np.cos(phase),
            angular_acceleration=-self.sway_amplitude * omega**2 * np.sin(phase),
        )


def surge_profile(t: np.ndarray, surge: float, period: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distance, speed and acceleration at times t (s) for a mean speed of 1: speed 1 + surge cos(2 pi t / period)."""
    omega = 2 * np.pi / period
    return t + surge / omega * np.sin(omega * t), 1 + surge * np.cos(omega * t), -surge * omega * np.sin(omega * t)


def sway_frequency(label: int) -> float:
    """Sway frequency in Hz of digit class ``label``: 0.5 + 0.15 * label."""
    return SWAY_BASE_HZ + SWAY_STEP_HZ * label


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
    fps: float = 8.0,
    surge: float = 0.25,
    surge_cycles: float = 1.0,
    sway: float = 0.2,
) -> DigitEvent:
    """Draw one event of ``split`` whose digit stays inside the size x size frame for all ``frames``.

    The mean speed is uniform in [min_speed, max_speed] pixels per frame, lowered only where the
    surged path cannot otherwise fit (e.g. size close to digit_size). ``sway`` is the sway
    amplitude in radians; the sway phase is uniform. ``surge_cycles`` surge periods span the clip:
    1 speeds the digit down and up again, so its acceleration averages to zero over the clip; 0.5
    only slows it down, so the mean acceleration points against the motion. Assumes size >=
    digit_size and 0 <= surge < 1 (then the digit never stops or turns back, so the path's ends
    bound it).
    """
    images = split_image_indices(split)
    image_index = int(images[rng.integers(len(images))])
    label = int(load_digit_images()[1][image_index])
    direction = int(rng.integers(NUM_DIRECTIONS))
    unit = DIRECTION_VECTORS[direction]
    room = size - digit_size  # free pixels along each axis
    speed = float(rng.uniform(min_speed, max_speed))
    period = frames / fps / surge_cycles
    reach = fps * surge_profile((frames - 1) / fps, surge, period)[0]  # pixels to the last frame per pixel/frame
    if reach > 0:
        speed = min(speed, room / (reach * np.abs(unit).max()))
    travel = reach * speed * unit  # (2,) displacement from the first to the last frame
    low = np.maximum(0.0, -travel)
    start = rng.uniform(low, np.maximum(low, room - np.maximum(0.0, travel)))  # the outer max absorbs round-off
    return DigitEvent(
        image_index=image_index,
        label=label,
        start=(float(start[0]), float(start[1])),
        velocity=(float(speed * unit[0]), float(speed * unit[1])),
        direction=direction,
        speed=speed,
        color=tuple(float(c) for c in rng.uniform(_MIN_BRIGHTNESS, 1.0, size=channels)),
        background_seed=int(rng.integers(2**63)),
        fps=float(fps),
        surge=float(surge),
        surge_period=float(period),
        sway_amplitude=float(sway),
        sway_frequency=sway_frequency(label),
        sway_phase=float(rng.uniform(0.0, 2 * np.pi)),
        noise_seed=int(rng.integers(2**63)),
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


def _rotated(alpha: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """alpha (d, d) turned counter-clockwise on screen by each angle (T,) in radians about its
    centre, bilinear, zero outside: (T, d, d) float32."""
    cos, sin = np.cos(angles), np.sin(angles)
    zeros = np.zeros_like(angles)
    # affine_grid maps output to input positions (x right, y down): the inverse of the screen rotation.
    theta = torch.tensor(np.stack([np.stack([cos, -sin, zeros], -1), np.stack([sin, cos, zeros], -1)], 1),
                         dtype=torch.float32)
    source = einops.repeat(torch.tensor(alpha, dtype=torch.float32), "h w -> t 1 h w", t=len(angles))
    grid = torch.nn.functional.affine_grid(theta, list(source.shape), align_corners=False)
    turned = torch.nn.functional.grid_sample(source, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return einops.rearrange(turned, "t 1 h w -> t h w").numpy()


def _sway_flow(positions: np.ndarray, angles: np.ndarray, frames: int, size: int, digit_size: int) -> np.ndarray:
    """Forward flow (2, T, H, W) of every pixel carried by the digit: its translation plus the turn
    by angles[t + 1] - angles[t] about the digit's centre (counter-clockwise on screen)."""
    centres = positions.astype(np.float64) + (digit_size - 1) / 2  # (T + 1, 2) pixel-centre (x, y)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    qx, qy = xs[None] - centres[:frames, 0, None, None], ys[None] - centres[:frames, 1, None, None]  # (T, H, W)
    turn = np.diff(angles)[:, None, None]
    cos, sin = np.cos(turn), np.sin(turn)
    shift = np.diff(centres, axis=0)  # (T, 2)
    dx = shift[:, 0, None, None] + cos * qx + sin * qy - qx
    dy = shift[:, 1, None, None] - sin * qx + cos * qy - qy
    return np.stack([dx, dy]).astype(np.float32)


def render_video(event: DigitEvent, *, frames: int, size: int, digit_size: int,
                 render_sway: bool = False) -> dict[str, np.ndarray]:
    """Render ``event`` as a clip; C = len(event.color), T = frames, H = W = size.

    render_sway: turn the digit by its sway angle in every frame (about its centre, counter-
    clockwise on screen for a positive angle), so the video shows what the IMU's gyroscopes
    measure; by default the digit's pixels never turn.

    Returns numpy arrays:
      video (C, T, H, W) float32 in [0, 1]: the coloured digit alpha-blended over the background;
      digit_mask (T, H, W) bool: pixels where the digit's alpha > 0.5;
      flow (2, T, H, W) float32: forward flow (dx, dy) from frame t to t+1 on digit_mask[t], 0
        elsewhere (the background is static). The last frame continues the surged path one
        frame further, i.e. it carries the displacement to where the digit would be at frame T;
      position (T, 2) float32: the rendered (integer) top-left (x, y) per frame.
    """
    positions = event.positions(frames + 1)  # one extra frame for the last frame's flow
    x, y = positions[:frames, 0], positions[:frames, 1]
    offsets = np.arange(digit_size)
    angles = event.motion(np.arange(frames + 1) / event.fps).angle
    digit = _digit_alphas(digit_size)[event.image_index]
    alpha = np.zeros((frames, size, size), np.float32)
    alpha[
        einops.rearrange(np.arange(frames), "t -> t 1 1"),
        einops.rearrange(y[:, None] + offsets, "t i -> t i 1"),
        einops.rearrange(x[:, None] + offsets, "t j -> t 1 j"),
    ] = _rotated(digit, angles[:frames]) if render_sway else digit
    background = einops.rearrange(render_background(event.background_seed, len(event.color), size), "c h w -> c 1 h w")
    color = einops.rearrange(np.asarray(event.color, np.float32), "c -> c 1 1 1")
    mask = alpha > 0.5
    if render_sway:
        displacement = _sway_flow(positions, angles, frames, size, digit_size)
    else:
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
    """Short clips of handwritten digits moving over a textured background, generated on the fly,
    with synchronised audio, IMU and captions rendered from the same :class:`DigitEvent`.

    Sample ``i`` is drawn from ``np.random.SeedSequence([seed, split_id, i])``, so it is
    bit-identical across calls, dataset objects and DataLoader workers. The splits use disjoint
    digit images (:func:`split_image_indices`). A sample is a dict; always:
      label () int64 digit class 0..9; direction () int64 class 0..NUM_DIRECTIONS-1 (0 right,
      counter-clockwise on screen, y down); speed () float32 mean speed in pixels per frame;
      speed_class () int64 0..speed_classes-1, the speed in ``speed_classes`` equal-width bins of
      [min_speed, max_speed] (:func:`speed_class`; 3 bins are the caption's slowly / steadily / quickly);
      flow (2, T, H, W) float32 forward flow (dx, dy) in pixels on the digit, 0 on the background;
      digit_mask (T, H, W) bool; position (T, 2) float32 top-left (x, y); index () int64
      (see :func:`render_video` for flow and position);
    and per requested modality m (``modalities``, from MODALITIES), plus ``{m}_present`` () bool:
      video (C, T, H, W) float32 in [0, 1];
      audio (S,) float32 waveform in [-1, 1], S = round(sample_rate * frames / fps) (:func:`render_audio`);
      imu {sensor: (T_d, 6) float32}, T_d = imu_rates[sensor] * frames / fps (:func:`render_imu`;
        ``imu_noise`` is the noise std relative to each sensor's signal RMS);
      text (text_length,) int64 token ids of ``caption`` (str, :func:`caption`), padded with the pad id.
    ``missing[m]`` is the probability that a sample lacks modality m, drawn per sample from its own
    stream of the same seed: then m's value is zeros of the usual shape (text: all pad ids and
    caption ""), and ``{m}_present`` is False. Side channels (flow, digit_mask, position, label,
    direction, speed, speed_class) are always given. fps sets the clip's duration (frames / fps seconds);
    ``surge``, ``surge_cycles`` and ``sway`` (amplitude in radians) set the kinematics
    (:func:`sample_event`); ``render_sway`` turns the digit by its sway in the video too (the
    flow then includes the turn).
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
        fps: float = 8.0,
        surge: float = 0.25,
        surge_cycles: float = 1.0,
        sway: float = 0.2,
        modalities: Sequence[str] = ("video",),
        missing: Mapping[str, float] = MappingProxyType({}),
        sample_rate: int = 16000,
        imu_rates: Mapping[str, float] = DEFAULT_IMU_RATES,
        imu_noise: float = 0.02,
        text_length: int = 48,
        text_tokenizer_path: str | None = None,
        render_sway: bool = False,
        speed_classes: int = 3,
    ):
        _check_split(split)
        counts = dict(
            num_samples=num_samples,
            speed_classes=speed_classes,
            frames=frames,
            digit_size=digit_size,
            channels=channels,
            sample_rate=sample_rate,
            text_length=text_length,
        )
        for name, value in counts.items():
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if not isinstance(speed_classes, numbers.Integral) or isinstance(speed_classes, bool):
            raise ValueError(f"speed_classes must be a whole number of classes, got {speed_classes!r}")
        if size < digit_size:
            raise ValueError(f"size ({size}) must be >= digit_size ({digit_size}) so the digit fits in the frame")
        if not 0 < min_speed <= max_speed < float("inf"):
            raise ValueError(f"need 0 < min_speed <= max_speed < inf, got min_speed={min_speed}, max_speed={max_speed}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        if not (fps > 0 and 0 <= surge < 1 and surge_cycles > 0 and sway >= 0 and imu_noise >= 0):
            raise ValueError(
                f"need fps > 0, 0 <= surge < 1, surge_cycles > 0, sway >= 0, imu_noise >= 0; got {fps=}, {surge=}, "
                f"{surge_cycles=}, {sway=}, {imu_noise=}"
            )
        self.modalities = (modalities,) if isinstance(modalities, str) else tuple(modalities)
        unknown = [m for m in self.modalities if m not in MODALITIES]
        if unknown or not self.modalities or len(set(self.modalities)) < len(self.modalities):
            raise ValueError(f"modalities must be distinct names from {MODALITIES}, got {self.modalities}")
        for modality, probability in missing.items():
            if modality not in self.modalities or not 0 <= probability <= 1:
                raise ValueError(
                    f"missing[{modality!r}] = {probability}: need one of the requested modalities "
                    f"{self.modalities} and 0 <= p <= 1"
                )
        self.split, self.num_samples, self.seed = split, num_samples, seed
        self.frames, self.size, self.digit_size, self.channels = frames, size, digit_size, channels
        self.min_speed, self.max_speed = min_speed, max_speed
        self.fps, self.surge, self.surge_cycles, self.sway = fps, surge, surge_cycles, sway
        self.missing = dict(missing)
        self.sample_rate, self.imu_rates, self.imu_noise = sample_rate, dict(imu_rates), imu_noise
        self.text_length = text_length
        self.render_sway = render_sway
        self.speed_classes = speed_classes
        self.imu_lengths = imu_lengths(self.imu_rates, frames / fps) if "imu" in self.modalities else {}
        self.tokenizer = load_text_tokenizer(text_tokenizer_path) if "text" in self.modalities else None
        split_image_indices(split)  # load the digits now, so forked DataLoader workers inherit them

    def __len__(self) -> int:
        return self.num_samples

    def _seed(self, index: int, spawn_key: tuple[int, ...] = ()) -> np.random.SeedSequence:
        index = operator.index(index)
        if not 0 <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for MovingDigits of length {self.num_samples}")
        return np.random.SeedSequence([self.seed, SPLITS.index(self.split), index], spawn_key=spawn_key)

    def event(self, index: int) -> DigitEvent:
        """The latent event of sample ``index`` (what every modality of that sample is rendered from)."""
        return sample_event(
            np.random.default_rng(self._seed(index)),
            self.split,
            frames=self.frames,
            size=self.size,
            digit_size=self.digit_size,
            channels=self.channels,
            min_speed=self.min_speed,
            max_speed=self.max_speed,
            fps=self.fps,
            surge=self.surge,
            surge_cycles=self.surge_cycles,
            sway=self.sway,
        )

    def presence(self, index: int) -> dict[str, bool]:
        """Whether sample ``index`` has each requested modality (one uniform draw per name in MODALITIES)."""
        draws = dict(zip(MODALITIES, np.random.default_rng(self._seed(index, (1,))).random(len(MODALITIES))))
        return {m: bool(draws[m] >= self.missing.get(m, 0.0)) for m in self.modalities}

    def __getitem__(self, index: int) -> dict:
        event = self.event(index)
        rendered = render_video(event, frames=self.frames, size=self.size, digit_size=self.digit_size,
                                render_sway=self.render_sway)
        video = torch.from_numpy(rendered.pop("video"))
        sample = {key: torch.from_numpy(value) for key, value in rendered.items()}
        for modality, present in self.presence(index).items():
            sample.update(self._render(modality, event, video) if present else self._blank(modality))
            sample[f"{modality}_present"] = torch.tensor(present)
        sample["label"] = torch.tensor(event.label, dtype=torch.int64)
        sample["direction"] = torch.tensor(event.direction, dtype=torch.int64)
        sample["speed"] = torch.tensor(event.speed, dtype=torch.float32)
        sample["speed_class"] = torch.tensor(speed_class(event.speed, self.min_speed, self.max_speed,
                                                         self.speed_classes), dtype=torch.int64)
        sample["index"] = torch.tensor(operator.index(index), dtype=torch.int64)
        return sample

    def _render(self, modality: str, event: DigitEvent, video: torch.Tensor) -> dict:
        if modality == "video":
            return {"video": video}
        if modality == "audio":
            return {"audio": torch.from_numpy(render_audio(event, frames=self.frames, sample_rate=self.sample_rate))}
        if modality == "imu":
            length = self.digit_size * METRES_PER_PIXEL
            signals = render_imu(
                event, frames=self.frames, digit_length=length, rates=self.imu_rates, noise=self.imu_noise
            )
            return {"imu": {name: torch.from_numpy(signal) for name, signal in signals.items()}}
        text = caption(event, min_speed=self.min_speed, max_speed=self.max_speed)
        return {"caption": text, "text": encode_captions([text], self.tokenizer, self.text_length)[0]}

    def _blank(self, modality: str) -> dict:
        """An absent modality: zeros of the usual shape and dtype (text: pad ids and an empty caption)."""
        if modality == "video":
            return {"video": torch.zeros(self.channels, self.frames, self.size, self.size)}
        if modality == "audio":
            return {"audio": torch.zeros(round(self.sample_rate * self.frames / self.fps))}
        if modality == "imu":
            return {"imu": {name: torch.zeros(length, 6) for name, length in self.imu_lengths.items()}}
        return {"caption": "", "text": torch.full((self.text_length,), self.tokenizer.pad_token_id, dtype=torch.int64)}
