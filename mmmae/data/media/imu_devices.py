"""Which device of an IMU log feeds each device of a model, at what rate and with how many channels.

A model's IMU tokenizer knows its devices by name, each at its own rate (``sample_rates``), with
a channel count each. Logs recorded elsewhere name their devices otherwise and run at other
rates. ``MediaDataset.imu_devices = {model device: log device}`` maps them; every model device
is then interpolated from its log device at the model's rate. The targets default to the rates
of the model's ``imu/IMUGraphTokenizer`` in the gin config, so a user never restates them.

A log device faster than its target is low-passed first (anti-aliasing, as before any
decimation): put on a uniform grid at its own rate (its median interval), then filtered forward
and backward (no delay) by a Butterworth filter of order ANTIALIAS_ORDER with its corner at
ANTIALIAS_CORNER x the target rate (0.8 x its Nyquist frequency, as scipy.signal.decimate).
Logs at or below the target rate are only interpolated.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import gin
import numpy as np
from gin.config import ConfigurableReference
from scipy.signal import butter, sosfiltfilt

from mmmae.data.media.errors import MediaError
from mmmae.data.media.imu_reader import ImuLog
from mmmae.tokenizers.imu import IMUGraphTokenizer

ANTIALIAS_ORDER = 4
ANTIALIAS_CORNER = 0.4  # x the target rate
FASTER = 1.01  # a log device counts as faster than its target above this ratio (clock drift is not)


@dataclass(frozen=True)
class DeviceMap:
    """rates: model device -> Hz (in the model's device order); sources: model device -> log
    device (a model device absent from it reads the log device of its own name); channels: model
    device -> channel count, or None when unknown (not checked)."""

    rates: dict[str, float]
    sources: dict[str, str]
    channels: dict[str, int] | None

    def select(self, log: ImuLog, path: str) -> ImuLog:
        """The log's (timestamps (N,), values (N, C)) per model device, keyed by model device.

        MediaError(path, ...) naming the device and the fix when a model device has no log device
        or its log device has another channel count than the model's.
        """
        picked = {}
        for device in self.rates:
            source = self.sources.get(device, device)
            if source not in log:
                raise MediaError(path, self._missing(device, source, sorted(log)))
            count, expected = log[source][1].shape[1], (self.channels or {}).get(device)
            if expected is not None and count != expected:
                named = repr(source) if source == device else f"{source!r} (the model's {device!r})"
                raise MediaError(path, f"IMU device {named} has {count} channels, the model's takes {expected}: "
                                       f"name {expected} of the log's channels in MediaDataset.imu_channels, "
                                       "in the order the model was trained on")
            picked[device] = antialiased(*log[source], self.rates[device])
        return picked

    def _missing(self, device: str, source: str, available: list[str]) -> str:
        if device in self.sources:
            return (f"MediaDataset.imu_devices maps the model's IMU device {device!r} to {source!r}, which the "
                    f"log lacks; it has {available}: map {device!r} to one of them")
        return (f"the model's IMU device {device!r} is not in the log, which has {available}: map one of them "
                f"onto it with MediaDataset.imu_devices = {{{device!r}: '<log device>', ...}}")


def antialiased(times: np.ndarray, values: np.ndarray, rate: float) -> tuple[np.ndarray, np.ndarray]:
    """(times (N,), values (N, C)) ready to interpolate at ``rate`` Hz: unchanged unless the samples
    come faster than FASTER x rate, else on a uniform grid from times[0] to times[-1] at their median
    interval, low-passed at ANTIALIAS_CORNER x rate (zero phase)."""
    period = float(np.median(np.diff(times))) if len(times) > 1 else np.inf
    if not 1 / period > FASTER * rate:
        return times, values
    grid = np.linspace(times[0], times[-1], round((times[-1] - times[0]) / period) + 1)
    uniform = np.stack([np.interp(grid, times, column) for column in values.T], axis=-1)
    rate_in = (len(grid) - 1) / (grid[-1] - grid[0])
    sos = butter(ANTIALIAS_ORDER, ANTIALIAS_CORNER * rate, fs=rate_in, output="sos")
    padding = min(3 * (2 * len(sos) + 1), len(grid) - 1)  # scipy's default, shortened for short logs
    return grid, sosfiltfilt(sos, uniform, axis=0, padlen=padding)


def device_map(devices: Mapping[str, str] | None, rates: Mapping[str, float] | None,
               channels: Sequence[str] | None) -> DeviceMap:
    """The DeviceMap of MediaDataset's imu_devices, imu_rates and imu_channels.

    rates default to the model's (imu/IMUGraphTokenizer.sample_rates in the gin config); the
    channel counts are the model's (its tokenizer's ``channels``), else len(channels) if given.
    ValueError naming the binding when no rates are known or the map names a device the model lacks.
    """
    rates = dict(rates or _tokenizer_binding("sample_rates") or {})
    if not rates:
        raise ValueError("MediaDataset.imu_rates must give each IMU device's rate in Hz ({device: Hz}); it defaults "
                         "to the model's imu/IMUGraphTokenizer.sample_rates, which this gin config does not bind")
    sources = dict(devices or {})
    unknown = sorted(set(sources) - set(rates))
    if unknown:
        raise ValueError(f"MediaDataset.imu_devices maps {unknown}, which the model lacks: its keys are the model's "
                         f"IMU devices {list(rates)}, its values the log's (e.g. {{{next(iter(rates))!r}: "
                         "'left_wrist'})")
    odd = {k: v for k, v in sources.items() if not isinstance(v, str)}
    if odd:
        raise ValueError(f"MediaDataset.imu_devices: log device names must be strings, got {odd}")
    return DeviceMap(rates, sources, _channel_counts(rates, channels))


def _channel_counts(rates: Mapping[str, float], channels: Sequence[str] | None) -> dict[str, int] | None:
    """model device -> channel count: the model tokenizer's when the config has one, else len(channels)."""
    if _tokenizer_binding("sample_rates") is not None:
        value = _tokenizer_binding("channels")
        if value is None:
            value = inspect.signature(IMUGraphTokenizer).parameters["channels"].default
        return {device: int(value[device] if isinstance(value, Mapping) else value)
                for device in rates if not isinstance(value, Mapping) or device in value}
    return {device: len(channels) for device in rates} if channels else None


def _tokenizer_binding(name: str):
    """The value gin binds to the model's IMUGraphTokenizer.<name> (scope 'imu', else none), or None."""
    for scope in ("imu/", ""):
        try:
            value = gin.query_parameter(f"{scope}IMUGraphTokenizer.{name}")
        except ValueError:
            continue
        return value.scoped_configurable_fn() if isinstance(value, ConfigurableReference) and value.evaluate else value
    return None
