"""MovingDigits' modalities, one renderer each, registered by modality name.

A module in mmmae/data/moving_digits/modalities/ renders one modality from a sample's
:class:`Scene` and calls :func:`register_renderer` at import; :func:`modality_names` imports
every module there, so adding a modality to MovingDigits is adding one file (its settings, if
new, are MovingDigits parameters and :class:`RenderSettings` attributes).
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable, Mapping
from typing import NamedTuple, Protocol

import torch
from transformers import PreTrainedTokenizerBase

from mmmae.data.moving_digits import modalities
from mmmae.data.moving_digits.events import DigitEvent


class RenderSettings(Protocol):
    """What the renderers read from the dataset (MovingDigits' attributes of the same names)."""

    frames: int
    size: int
    digit_size: int
    channels: int
    fps: float
    min_speed: float
    max_speed: float
    sample_rate: int
    imu_rates: Mapping[str, float]
    imu_noise: float
    imu_lengths: Mapping[str, int]
    text_length: int
    tokenizer: PreTrainedTokenizerBase | None


class Scene(NamedTuple):
    """One sample as the renderers see it: its event and its clip video (C, T, H, W) float32,
    rendered once by the dataset (the side channels come from it too)."""

    event: DigitEvent
    video: torch.Tensor


class ModalityRenderer(NamedTuple):
    """How MovingDigits makes one modality of a sample.

    order: the modality's place in :func:`modality_names`, the order of a sample's presence draws
      (a new modality takes the next number, so the draws of the others do not change);
    render(scene, settings): the sample's keys of the modality, e.g. {"audio": (S,) float32};
    blank(settings): the same keys for an absent modality, zeros of the same shapes and dtypes.
    """

    order: int
    render: Callable[[Scene, RenderSettings], dict]
    blank: Callable[[RenderSettings], dict]


RENDERERS: dict[str, ModalityRenderer] = {}


def register_renderer(name: str, renderer: ModalityRenderer) -> None:
    """Make modality ``name`` renderable; ValueError if the name or the order is taken."""
    orders = {other_name: other.order for other_name, other in RENDERERS.items()}
    if name in orders or renderer.order in orders.values():
        raise ValueError(f"MovingDigits modality {name!r} (order {renderer.order}): the name or the order is "
                         f"taken already; registered (name: order): {orders}")
    RENDERERS[name] = renderer


@functools.cache
def modality_names() -> tuple[str, ...]:
    """Every modality MovingDigits renders, in presence-draw order, after importing each module
    of mmmae/data/moving_digits/modalities/ (which register them)."""
    for module in pkgutil.iter_modules(modalities.__path__, f"{modalities.__name__}."):
        importlib.import_module(module.name)
    return tuple(sorted(RENDERERS, key=lambda name: RENDERERS[name].order))
