"""MediaDataset's modalities besides video, one reader each, registered by modality name.

The video, where a dataset reads it, times the clip: MediaDataset reads it first (with its
sampling and transform), then every other requested modality over the clip's span with the
reader registered here. A module in mmmae/data/media/modalities/ calls :func:`register_reader`
at import; :func:`reader_names` imports every module there, so adding a modality to
MediaDataset is adding one file (its settings, if new, are MediaDataset parameters and
:class:`ReadSettings` attributes).
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple, Protocol

from transformers import PreTrainedTokenizerBase

from mmmae.data.media import modalities
from mmmae.data.media.imu_devices import DeviceMap


class ReadSettings(Protocol):
    """What the readers read from the dataset (MediaDataset's attributes of the same names)."""

    sample_rate: int
    audio_channels: Sequence[int | str] | None
    imu_map: DeviceMap | None
    imu_rates: Mapping[str, float]
    imu_channels: Sequence[str] | None
    mirror_channels: list[int]
    max_gap: float | None
    text_length: int
    tokenizer: PreTrainedTokenizerBase | None


class ClipSpan(NamedTuple):
    """Where a clip lies in its row's files: ``span`` seconds from ``start`` (on the video's time
    base); ``flipped``: the video transform mirrored the frames."""

    start: float
    span: float
    flipped: bool


class ModalityReader(NamedTuple):
    """How MediaDataset reads one modality of a row.

    column: the layout column that names the modality's file (or holds its text);
    read(row, clip, settings): the sample's keys of the modality, e.g. {"audio": (S,) float32}, or
      None where the file turns out to lack it (audio from a video file without sound); MediaError
      if it cannot be read;
    blank(span, settings): the same keys for a row without the modality, zeros of the usual shapes
      for a clip of ``span`` seconds.
    """

    column: str
    read: Callable[[dict, ClipSpan, ReadSettings], dict | None]
    blank: Callable[[float, ReadSettings], dict]


READERS: dict[str, ModalityReader] = {}


def register_reader(name: str, reader: ModalityReader) -> None:
    """Make modality ``name`` readable; ValueError if it is taken (or is 'video', which times the clip)."""
    if name in READERS or name == "video":
        raise ValueError(f"MediaDataset modality {name!r} has a reader already (video is MediaDataset's own)")
    READERS[name] = reader


@functools.cache
def reader_names() -> tuple[str, ...]:
    """Every modality with a reader, sorted, after importing each module of
    mmmae/data/media/modalities/ (which register them)."""
    for module in pkgutil.iter_modules(modalities.__path__, f"{modalities.__name__}."):
        importlib.import_module(module.name)
    return tuple(sorted(READERS))
