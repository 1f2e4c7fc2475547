"""Tests for MovingDigits' events: splits, the surged path and the sway."""

import numpy as np
import pytest

from mmmae.data.moving_digits.dataset import MovingDigits
from mmmae.data.moving_digits.events import DIRECTION_VECTORS, SPLITS, split_image_indices


def test_splits_use_disjoint_images_and_all_classes():
    fixed = {split: set(split_image_indices(split).tolist()) for split in SPLITS}
    assert sum(map(len, fixed.values())) == 1797 and len(set.union(*fixed.values())) == 1797
    assert abs(len(fixed["train"]) - 0.7 * 1797) < 2 and abs(len(fixed["val"]) - 0.15 * 1797) < 2
    used = {}
    for split in SPLITS:
        data = MovingDigits(split=split, num_samples=400, seed=5)
        events = [data.event(i) for i in range(len(data))]
        used[split] = {event.image_index for event in events}
        assert used[split] <= fixed[split]
        assert {event.label for event in events} == set(range(10)), split
        assert int(data[0]["label"]) == events[0].label
    assert not used["train"] & used["val"]
    assert not used["train"] & used["test"]
    assert not used["val"] & used["test"]


def test_split_assignment_ignores_seed():
    a = {MovingDigits(split="val", seed=0).event(i).image_index for i in range(200)}
    b = {MovingDigits(split="val", seed=123).event(i).image_index for i in range(200)}
    assert a | b <= set(split_image_indices("val").tolist())


def test_positions_follow_the_surged_path():
    data = MovingDigits(frames=8, surge=0.4)
    k = np.arange(8)
    for index in range(20):
        event = data.event(index)
        distance = event.speed * (k + 0.4 * 8 / (2 * np.pi) * np.sin(2 * np.pi * k / 8))  # pixels
        expected = np.rint(np.asarray(event.start) + distance[:, None] * DIRECTION_VECTORS[event.direction])
        np.testing.assert_array_equal(data[index]["position"].numpy(), expected)
    steps = np.diff(data.event(0).path(np.arange(9) / 8.0)[0])
    assert (np.diff(steps[:4]) < 0).all() and (np.diff(steps[4:]) > 0).all()  # slows down, then speeds up


def test_sway_set_by_class():
    data = MovingDigits(sway=0.3)
    for index in range(20):
        event = data.event(index)
        assert event.sway_frequency == pytest.approx(0.5 + 0.15 * event.label)
        assert event.sway_amplitude == 0.3
