"""Tests for MovingDigits' video renderer: the sway's rotation and flow."""

import numpy as np
import pytest
import torch

from mmmae.data.moving_digits.dataset import MovingDigits


def test_rotation_turns_counter_clockwise_on_screen():
    from mmmae.data.moving_digits.modalities.video import _rotated

    spot = np.zeros((9, 9), np.float32)
    spot[4, 7] = 1.0  # right of the centre (4, 4)
    turned = _rotated(spot, np.array([0.0, np.pi / 2]))
    assert turned[0, 4, 7] == pytest.approx(1.0)
    assert np.unravel_index(turned[1].argmax(), (9, 9)) == (1, 4)  # a quarter turn moves it above the centre


def _orientation(mask: np.ndarray) -> float:
    """Principal-axis angle (radians, counter-clockwise with y up) of a (H, W) weight map."""
    ys, xs = np.nonzero(mask)
    weights = mask[ys, xs]
    x, y = xs - np.average(xs, weights=weights), -(ys - np.average(ys, weights=weights))
    cov = np.cov(np.stack([x, y]), aweights=weights)
    return 0.5 * np.arctan2(2 * cov[0, 1], cov[0, 0] - cov[1, 1])


def test_render_sway_turns_the_digit_by_its_sway_angle_and_the_flow_follows():
    import dataclasses

    from mmmae.data.moving_digits.modalities.video import render_video

    data = MovingDigits(split="test", num_samples=40, frames=8, size=32, digit_size=16, sway=0.5, render_sway=True)
    ones = [i for i in range(40) if data.event(i).label == 1]
    event = dataclasses.replace(data.event(ones[0]), speed=0.0, velocity=(0.0, 0.0))
    still = render_video(event, frames=8, size=32, digit_size=16, render_sway=False)
    turned = render_video(event, frames=8, size=32, digit_size=16, render_sway=True)
    angles = event.motion(np.arange(8) / event.fps).angle
    base = _orientation(still["digit_mask"][0].astype(float))

    def turn(mask: np.ndarray) -> float:  # orientation change, wrapped into [-pi/2, pi/2) (axes have no sign)
        return (_orientation(mask.astype(float)) - base + np.pi / 2) % np.pi - np.pi / 2

    turns = [turn(turned["digit_mask"][t]) for t in range(8)]
    unrotated = [turn(still["digit_mask"][t]) for t in range(8)]
    assert np.allclose(unrotated, 0.0)
    assert np.corrcoef(turns, angles)[0, 1] > 0.9 and np.ptp(turns) > 0.5
    # flow carries frame t's digit pixels onto frame t + 1's digit
    ys, xs = np.nonzero(turned["digit_mask"][2])
    x1 = np.rint(xs + turned["flow"][0, 2, ys, xs]).astype(int)
    y1 = np.rint(ys + turned["flow"][1, 2, ys, xs]).astype(int)
    assert turned["digit_mask"][3, y1, x1].mean() > 0.8


def test_render_sway_without_sway_changes_nothing():
    plain = MovingDigits(num_samples=3, sway=0.0)[1]
    swayed = MovingDigits(num_samples=3, sway=0.0, render_sway=True)[1]
    assert torch.allclose(plain["video"], swayed["video"], atol=1e-6)
    both = plain["digit_mask"] & swayed["digit_mask"]  # alphas of exactly 0.5 may round either way
    assert (plain["digit_mask"] != swayed["digit_mask"]).float().mean() < 0.01
    assert torch.allclose(plain["flow"][:, both], swayed["flow"][:, both], atol=1e-5)
