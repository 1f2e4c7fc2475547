"""Tests for MovingDigits' text: captions and the speed classes."""

import dataclasses

import numpy as np
import pytest

from mmmae.data.moving_digits.dataset import MovingDigits
from mmmae.data.moving_digits.modalities.text import caption, speed_class, speed_word


@pytest.fixture(scope="module")
def event():
    return MovingDigits().event(0)


@pytest.mark.parametrize(
    ("label", "direction", "speed", "expected"),
    [
        (7, 3, 1.9, "a seven moves quickly to the upper left"),
        (8, 6, 0.6, "an eight moves slowly down"),
        (0, 0, 1.25, "a zero moves steadily to the right"),
        (1, 2, 0.9, "a one moves slowly up"),
        (3, 5, 1.6, "a three moves quickly to the lower left"),
        (4, 7, 1.4, "a four moves steadily to the lower right"),
    ],
)
def test_known_events(event, label, direction, speed, expected):
    known = dataclasses.replace(event, label=label, direction=direction, speed=speed)
    assert caption(known, min_speed=0.5, max_speed=2.0) == expected


def test_speed_words_by_thirds_and_clamped():
    words = [speed_word(s, 0.5, 2.0) for s in (0.5, 0.99, 1.01, 1.49, 1.51, 2.0, 0.1, 5.0)]
    assert words == ["slowly", "slowly", "steadily", "steadily", "quickly", "quickly", "slowly", "quickly"]
    assert speed_word(1.0, 1.0, 1.0) == "steadily"


def test_dataset_captions_describe_their_event():
    data = MovingDigits(num_samples=40, modalities=("text",))
    words = set()
    for index in range(40):
        sample, event = data[index], data.event(index)
        assert sample["caption"] == caption(event, min_speed=0.5, max_speed=2.0)
        assert data.tokenizer.decode(sample["text"], skip_special_tokens=True) == sample["caption"]
        words.add(sample["caption"].split()[3])
    assert words == {"slowly", "steadily", "quickly"}


def test_speed_class_bins_are_equal_width_with_their_lower_edge_inside():
    edges = [1.0, 2.0, 3.0, 4.0]  # min 1, max 4, three classes of width 1
    below = [np.nextafter(edge, 0.0) for edge in edges]
    assert [speed_class(s, 1.0, 4.0, 3) for s in edges] == [0, 1, 2, 2]  # the top edge is in the last class
    assert [speed_class(s, 1.0, 4.0, 3) for s in below[1:]] == [0, 1, 2]
    assert speed_class(0.5, 1.0, 4.0, 3) == 0 and speed_class(9.0, 1.0, 4.0, 3) == 2  # clamped to the end classes
    assert speed_class(1.0, 1.0, 1.0, 3) == speed_class(0.8, 1.0, 1.0, 3) == 0  # a zero-width range: one class
    assert [speed_class(s, 1.0, 4.0, 1) for s in edges] == [0, 0, 0, 0]
