"""Tests for the MovingDigits IMU renderer: shapes, the rigid-body physics, gravity and noise."""

import dataclasses

import numpy as np
import pytest

from mmmae.data.moving_digits.dataset import MovingDigits
from mmmae.data.moving_digits.events import DIRECTION_VECTORS
from mmmae.data.moving_digits.modalities.imu import DEFAULT_IMU_RATES, GRAVITY, SENSOR_POINTS, render_imu

LENGTH = 0.12  # a 12-pixel digit is 12 cm


@pytest.fixture(scope="module")
def event():
    """A 1 s clip (8 frames at 8 fps), moving up-left at 2 pixels per frame, sway 0.3 rad."""
    base = MovingDigits(frames=8, fps=8.0).event(1)
    return dataclasses.replace(base, direction=3, speed=2.0, surge=0.25, sway_amplitude=0.3, sway_phase=0.4)


def clean(event, **kwargs):
    return render_imu(event, frames=8, digit_length=LENGTH, noise=0.0, **kwargs)


def test_shapes_dtypes_and_determinism(event):
    signals = render_imu(event, frames=8, digit_length=LENGTH)
    shapes = {name: s.shape for name, s in signals.items()}
    assert shapes == {"top_left": (32, 6), "top_right": (32, 6), "bottom": (16, 6), "center": (64, 6)}
    assert all(s.dtype == np.float32 for s in signals.values())
    again = render_imu(event, frames=8, digit_length=LENGTH)
    assert all(np.array_equal(signals[name], again[name]) for name in signals)
    other = render_imu(dataclasses.replace(event, noise_seed=1), frames=8, digit_length=LENGTH)
    assert not np.array_equal(signals["center"], other["center"])
    assert render_imu(event, frames=4, digit_length=LENGTH, rates={"left": 10.0})["left"].shape == (5, 6)


@pytest.mark.parametrize(
    ("rates", "name"), [({"bottom": 12.5}, "bottom"), ({"elbow": 16.0}, "elbow"), ({"top": 0.0}, "top")]
)
def test_bad_rates_name_the_sensor(event, rates, name):
    with pytest.raises(ValueError, match=name):
        clean(event, rates=rates)


def test_gyro_is_the_sway_derivative(event):
    signals = clean(event)
    for name, rate in DEFAULT_IMU_RATES.items():
        t = np.arange(len(signals[name])) / rate
        omega = 2 * np.pi * event.sway_frequency
        np.testing.assert_allclose(signals[name][:, 5], 0.3 * omega * np.cos(omega * t + 0.4), atol=1e-5)
        np.testing.assert_array_equal(signals[name][:, 3:5], 0.0)
    assert event.sway_frequency == pytest.approx(0.5 + 0.15 * event.label)


def test_gravity_on_the_screen_normal(event):
    for signal in clean(event).values():
        np.testing.assert_allclose(signal[:, 2], GRAVITY, rtol=1e-6)


def test_centre_acceleration_is_the_surge_derivative(event):
    centre = clean(event)["center"].astype(np.float64)
    t = np.arange(64) / 64.0
    theta = 0.3 * np.sin(2 * np.pi * event.sway_frequency * t + 0.4)
    # back from the swaying body frame to the screen frame (x right, y up)
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])  # (2, 2, 64)
    world = np.einsum("ijt,tj->ti", rotation, centre[:, :2])
    unit = DIRECTION_VECTORS[3] * (1, -1)  # up-left, y up
    mean_speed = 2.0 * 8.0 * 0.01  # m/s
    expected = -mean_speed * 0.25 * 2 * np.pi * np.sin(2 * np.pi * t)  # d/dt of v (1 + 0.25 cos(2 pi t / 1 s))
    np.testing.assert_allclose(world @ unit, expected, atol=1e-5)
    np.testing.assert_allclose(world @ np.array([-unit[1], unit[0]]), 0.0, atol=1e-5)
    # decelerating during the first half period: the acceleration points against the motion
    assert (world[1:32] @ unit < 0).all()


def test_opposite_directions_flip_the_centre_acceleration(event):
    still = dataclasses.replace(event, sway_amplitude=0.0)
    a, b = (clean(dataclasses.replace(still, direction=d))["center"][:, :2] for d in (1, 5))
    np.testing.assert_allclose(a, -b, atol=1e-6)
    assert np.abs(a).max() > 0.1


def test_rigid_body_terms_at_the_attachment_points(event):
    spinning = dataclasses.replace(event, surge=0.0)  # constant velocity: only the sway accelerates
    signals = clean(spinning, rates={name: 16.0 for name in SENSOR_POINTS})
    t = np.arange(16) / 16.0
    omega = 2 * np.pi * event.sway_frequency
    rate = 0.3 * omega * np.cos(omega * t + 0.4)
    alpha = -0.3 * omega**2 * np.sin(omega * t + 0.4)
    for name, (u, v) in SENSOR_POINTS.items():
        rx, ry = u * LENGTH, v * LENGTH
        expected = np.stack([-alpha * ry - rate**2 * rx, alpha * rx - rate**2 * ry], 1)  # alpha x r + w x (w x r)
        np.testing.assert_allclose(signals[name][:, :2], expected, atol=1e-5, err_msg=name)
    assert not np.allclose(signals["top_left"], signals["top_right"])
    assert not np.allclose(signals["top_left"], signals["bottom_right"])
    np.testing.assert_allclose(signals["center"][:, :2], 0.0, atol=1e-6)


def test_noise_std_is_relative_to_the_signal(event):
    long = dataclasses.replace(event, surge_period=8.0)
    rates = {"top_right": 64.0}
    clip = render_imu(long, frames=64, digit_length=LENGTH, rates=rates, noise=0.0)["top_right"]
    noisy = render_imu(long, frames=64, digit_length=LENGTH, rates=rates, noise=0.05)["top_right"]
    error = noisy - clip
    accel_rms = np.sqrt((clip[:, :2] ** 2).sum(1).mean())
    gyro_rms = np.sqrt((clip[:, 3:] ** 2).sum(1).mean())
    assert error[:, :3].std() == pytest.approx(0.05 * accel_rms, rel=0.15)
    assert error[:, 3:].std() == pytest.approx(0.05 * gyro_rms, rel=0.15)
    assert abs(error.mean()) < 0.01
