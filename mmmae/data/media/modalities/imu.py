"""MediaDataset's IMU: the row's log, keyed by the model's devices, resampled over the clip's span."""

from __future__ import annotations

import torch

from mmmae.data.media.errors import source_name
from mmmae.data.media.imu_reader import ImuLog, read_imu_log, resample_imu
from mmmae.data.media.modality_readers import ClipSpan, ModalityReader, ReadSettings, register_reader


def read_device_log(row: dict, settings: ReadSettings) -> ImuLog:
    """The row's IMU log, checked whole (gaps: max_gap), keyed by the model's devices."""
    log = read_imu_log(row["imu"], settings.imu_channels, max_gap=settings.max_gap)
    return settings.imu_map.select(log, source_name(row["imu"]))


def _read(row: dict, clip: ClipSpan, settings: ReadSettings) -> dict[str, dict[str, torch.Tensor]]:
    """{device: (rate * span, C)}, the mirror_channels negated where the video was flipped."""
    log = read_device_log(row, settings)
    signals = resample_imu(log, clip.start, clip.start + clip.span, settings.imu_rates,
                           path=source_name(row["imu"]))  # a streamed log is bytes: "<bytes>"
    if clip.flipped and settings.mirror_channels:
        signals = {name: _negate(values, settings.mirror_channels) for name, values in signals.items()}
    return {"imu": signals}


def _blank(span: float, settings: ReadSettings) -> dict[str, dict[str, torch.Tensor]]:
    """Zeros (rate * span, C) per device."""
    channels = len(settings.imu_channels) if settings.imu_channels else 6
    return {"imu": {name: torch.zeros(round(rate * span), channels) for name, rate in settings.imu_rates.items()}}


def _negate(values: torch.Tensor, channels: list[int]) -> torch.Tensor:
    """values (N, C) with the given channels negated (a horizontal flip mirrors those axes)."""
    sign = torch.ones(values.shape[-1])
    sign[channels] = -1
    return values * sign


register_reader("imu", ModalityReader(column="imu", read=_read, blank=_blank))
