"""The latent events of MovingDigits: what a sample is, drawn once and rendered into every modality.

Real handwritten digits (scikit-learn's bundled ``load_digits``: 1797 8x8 images, no download)
move along a straight line over a static textured background, their speed surging
periodically, while they sway (rotate in-plane) at a rate set by their class. Each sample is
one latent :class:`DigitEvent` drawn by :func:`sample_event`; the renderers
(modalities/, one module per modality) turn that SAME event into each modality. This module
imports no renderer. Everything is deterministic per (seed, split, index).

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
from typing import NamedTuple

import numpy as np

SPLITS = ("train", "val", "test")
NUM_DIRECTIONS = 8

_ANGLES = np.deg2rad(np.arange(NUM_DIRECTIONS) * 360 / NUM_DIRECTIONS)
# (NUM_DIRECTIONS, 2) unit (dx, dy) per direction class; rounded so axis-aligned moves are exact.
DIRECTION_VECTORS = np.round(np.stack([np.cos(_ANGLES), -np.sin(_ANGLES)], axis=-1), 12) + 0.0
DIRECTION_VECTORS.flags.writeable = False

_SPLIT_FRACTIONS = (0.70, 0.15)  # train, val; test takes the rest
_SPLIT_PERMUTATION_SEED = 1797  # constant: the splits never depend on the dataset's seed
_MIN_BRIGHTNESS = 0.6  # digit colour channels lie in [0.6, 1), above the background's [0, 0.5]
METRES_PER_PIXEL = 0.01
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
    check_split(split)
    num_images = len(load_digit_images()[1])
    permutation = np.random.default_rng(_SPLIT_PERMUTATION_SEED).permutation(num_images)
    cuts = np.round(np.cumsum(_SPLIT_FRACTIONS) * num_images).astype(int)
    indices = np.split(permutation, cuts)[SPLITS.index(split)]
    indices.flags.writeable = False
    return indices


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
    color: one value per channel in [0.6, 1); background_seed: seeds the video's ``render_background``.
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
    classes: tuple[int, ...] | None = None,
) -> DigitEvent:
    """Draw one event of ``split`` whose digit stays inside the size x size frame for all ``frames``.

    The mean speed is uniform in [min_speed, max_speed] pixels per frame, lowered only where the
    surged path cannot otherwise fit (e.g. size close to digit_size). ``sway`` is the sway
    amplitude in radians; the sway phase is uniform. ``surge_cycles`` surge periods span the clip:
    1 speeds the digit down and up again, so its acceleration averages to zero over the clip; 0.5
    only slows it down, so the mean acceleration points against the motion. Assumes size >=
    digit_size and 0 <= surge < 1 (then the digit never stops or turns back, so the path's ends
    bound it). ``classes``: draw only images of these digit classes (None: all ten).
    """
    images = split_image_indices(split) if classes is None else class_image_indices(split, tuple(classes))
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


@functools.cache
def class_image_indices(split: str, classes: tuple[int, ...]) -> np.ndarray:
    """The indices of ``split``'s images (:func:`split_image_indices`) whose digit class is in ``classes``."""
    indices = split_image_indices(split)
    kept = indices[np.isin(load_digit_images()[1][indices], classes)]
    kept.flags.writeable = False
    return kept


def check_split(split: str) -> None:
    """ValueError unless ``split`` is one of SPLITS."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")

