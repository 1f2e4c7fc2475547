"""Tests for MovingDigits' renderer registry."""

import pytest

from mmmae.data.moving_digits.dataset import MovingDigits
from mmmae.data.moving_digits.modality_renderers import RENDERERS, ModalityRenderer, modality_names, register_renderer


def test_every_modality_registers_itself_in_presence_draw_order():
    assert modality_names() == ("video", "audio", "imu", "text")
    assert [RENDERERS[m].order for m in modality_names()] == [0, 1, 2, 3]


def test_a_taken_name_or_order_is_refused():
    taken = RENDERERS["audio"]
    with pytest.raises(ValueError, match="'audio'"):
        register_renderer("audio", taken)
    with pytest.raises(ValueError, match="order 1"):
        register_renderer("depth", ModalityRenderer(order=1, render=taken.render, blank=taken.blank))
    assert "depth" not in RENDERERS


def test_blank_has_the_shapes_and_dtypes_of_the_rendered_modality():
    data = MovingDigits(num_samples=2, frames=4, size=16, digit_size=8, modalities=modality_names())
    sample = data[0]
    for name in modality_names():
        for key, blank in RENDERERS[name].blank(data).items():
            values = blank.values() if isinstance(blank, dict) else [blank]
            rendered = sample[key].values() if isinstance(sample[key], dict) else [sample[key]]
            for zero, value in zip(values, rendered, strict=True):
                assert type(zero) is type(value)
                if not isinstance(zero, str):
                    assert zero.shape == value.shape and zero.dtype == value.dtype, (name, key)
