"""IMU of a MovingDigits event: virtual body-worn sensors rigidly attached to the swaying digit.

Frames (see ``events.Motion``): the screen lies face up, x right, y up, z out of the
screen towards the viewer; each sensor's body frame is the digit's frame, i.e. the screen frame
rotated by the sway angle about z. A sensor at body offset r (metres) from the digit's centre
measures, in its body frame, the specific force

    R(-theta) a_centre + alpha x r + omega x (omega x r) + (0, 0, 9.81)   [m/s^2]

(translation from the surge, tangential and centripetal terms from the sway, and the reaction
to gravity, which points along -z) and the angular velocity (0, 0, omega) [rad/s]. Everything is
analytic (no finite differences).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import numpy as np
import torch

from mmmae.data.moving_digits.events import METRES_PER_PIXEL, DigitEvent
from mmmae.data.moving_digits.modality_renderers import ModalityRenderer, RenderSettings, Scene, register_renderer

GRAVITY = 9.81
# Attachment points in units of the digit's size, relative to its centre, x right and y up.
SENSOR_POINTS = MappingProxyType(
    {
        "top_left": (-0.5, 0.5),
        "top": (0.0, 0.5),
        "top_right": (0.5, 0.5),
        "left": (-0.5, 0.0),
        "center": (0.0, 0.0),
        "right": (0.5, 0.0),
        "bottom_left": (-0.5, -0.5),
        "bottom": (0.0, -0.5),
        "bottom_right": (0.5, -0.5),
    }
)
DEFAULT_IMU_RATES = MappingProxyType({"top_left": 32.0, "top_right": 32.0, "bottom": 16.0, "center": 64.0})


def imu_lengths(rates: Mapping[str, float], duration: float) -> dict[str, int]:
    """Samples per sensor, rate * duration; ValueError naming the sensor if unknown or not an integer count."""
    lengths = {}
    for name, rate in rates.items():
        if name not in SENSOR_POINTS:
            raise ValueError(f"unknown IMU sensor {name!r}; expected one of {sorted(SENSOR_POINTS)}")
        count = rate * duration
        if not rate > 0 or abs(count - round(count)) > 1e-6:
            raise ValueError(
                f"IMU sensor {name!r}: rate {rate} Hz x clip {duration} s = {count} samples, must be a positive integer"
            )
        lengths[name] = round(count)
    return lengths


def render_imu(
    event: DigitEvent,
    *,
    frames: int,
    digit_length: float,
    rates: Mapping[str, float] = DEFAULT_IMU_RATES,
    noise: float = 0.02,
) -> dict[str, np.ndarray]:
    """{sensor: (T_d, 6) float32}: body-frame acceleration (m/s^2) then angular velocity (rad/s).

    digit_length: the digit's side in metres (the attachment points scale with it). Sensor d
    samples t = j / rate_d for j < T_d = rate_d * frames / fps. Gaussian noise is added
    with std ``noise`` times the RMS magnitude over the clip of the sensor's noise-free motion
    signal (gravity excluded), separately for acceleration and angular velocity, so ``noise`` is
    a relative level; it is seeded by the event's noise_seed and the sensor (so adding a sensor changes no other).
    """
    signals = {}
    for name, length in imu_lengths(rates, frames / event.fps).items():
        motion = event.motion(np.arange(length) / rates[name])
        rx, ry = np.asarray(SENSOR_POINTS[name]) * digit_length
        cos, sin = np.cos(motion.angle), np.sin(motion.angle)
        (ax, ay), alpha, omega2 = motion.acceleration.T, motion.angular_acceleration, motion.angular_velocity**2
        accel = np.stack(  # R(-theta) a_centre + alpha x r + omega x (omega x r), all in the body frame
            [cos * ax + sin * ay - alpha * ry - omega2 * rx, -sin * ax + cos * ay + alpha * rx - omega2 * ry]
        )
        gyro = np.stack([np.zeros_like(alpha), np.zeros_like(alpha), motion.angular_velocity])
        scale = np.repeat([_rms(accel), _rms(gyro)], 3)[:, None]  # (6, 1)
        rng = np.random.default_rng([event.noise_seed, 1, list(SENSOR_POINTS).index(name)])
        clean = np.concatenate([accel, np.full((1, length), GRAVITY), gyro])
        signals[name] = (clean + noise * scale * rng.standard_normal(clean.shape)).T.astype(np.float32)
    return signals


def _rms(vectors: np.ndarray) -> float:
    """RMS magnitude of (D, N) vectors over N."""
    return float(np.sqrt((vectors**2).sum(axis=0).mean()))


def _render(scene: Scene, settings: RenderSettings) -> dict[str, dict[str, torch.Tensor]]:
    length = settings.digit_size * METRES_PER_PIXEL
    signals = render_imu(
        scene.event, frames=settings.frames, digit_length=length, rates=settings.imu_rates, noise=settings.imu_noise
    )
    return {"imu": {name: torch.from_numpy(signal) for name, signal in signals.items()}}


def _blank(settings: RenderSettings) -> dict[str, dict[str, torch.Tensor]]:
    """Zeros (T_d, 6) per sensor."""
    return {"imu": {name: torch.zeros(length, 6) for name, length in settings.imu_lengths.items()}}


register_renderer("imu", ModalityRenderer(order=2, render=_render, blank=_blank))
