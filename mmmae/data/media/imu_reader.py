"""IMU logs: read several devices at their own rates, check them, and interpolate a span onto fixed rates.

Formats (chosen by content, so bytes work too):
- CSV, long format: header ``timestamp,device,<ch1>,<ch2>,...``, one row per sample of one device;
  devices may interleave and run at any rates. Timestamps are seconds on the video time base.
- NPZ: one array per device, named by the device, shape (N, 1 + C); column 0 is the timestamp.
- NPY: one device's (N, 1 + C) array, read as the device named ``NPY_DEVICE`` ("imu").
"""

from __future__ import annotations

import csv
import io
import os
import zipfile
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch

from mmmae.data.media.errors import MediaError

ImuLog = dict[str, tuple[np.ndarray, np.ndarray]]  # device -> (timestamps (N,) float64, values (N, C) float64)

_ZIP_MAGIC = b"PK\x03\x04"  # an npz is a zip archive
_NPY_MAGIC = b"\x93NUMPY"
NPY_DEVICE = "imu"  # the device an .npy log (a single array) holds
_TIME_TOLERANCE = 1e-6  # s: a span end this close to the log's first or last sample still counts as covered
GAP_PERIODS = 2.5  # a gap: an interval over this many of the device's sampling periods (one lost sample is none)
_TIME_ULPS = 16  # decimal timestamps, parsed, are exact to a few units in the last place of the largest


def read_imu_log(
    source: str | os.PathLike | bytes, channels: Sequence[str] | None = None, max_gap: float | None = None
) -> ImuLog:
    """Every device of an IMU log (CSV or NPZ, a path or the file's bytes), checked as a whole.

    channels: for a CSV, the columns to keep, in this order (default all after ``device``); for an
    NPZ or NPY, whose columns have no names, the names the C value columns must number. MediaError,
    naming the file, the device and the line (CSV) or row (NPZ) and time, for a non-finite value or
    timestamp, a timestamp that does not increase, a gap, a device without samples, a channel count
    other than the configured ``channels``, or a malformed file. A gap is an interval between
    consecutive samples of a device longer than GAP_PERIODS of its own sampling period (the median
    interval), or than ``max_gap`` seconds if given; one equal to the limit up to float rounding is none.
    """
    if max_gap is not None and not max_gap > 0:
        raise ValueError(f"max_gap must be a positive number of seconds, or None for the devices' own periods; "
                         f"got {max_gap}")
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        try:
            with open(source, "rb") as file:
                data = file.read()
        except OSError as error:
            raise MediaError(source, f"cannot read IMU log: {error.strerror}") from error
    if not data:
        raise MediaError(source, "empty file")
    if data.startswith(_NPY_MAGIC):
        return _read_npy(source, data, channels, max_gap)
    parse = _read_npz if data.startswith(_ZIP_MAGIC) else _read_csv
    return parse(source, data, channels, max_gap)


def _read_npy(source, data: bytes, channels: Sequence[str] | None, max_gap: float | None) -> ImuLog:
    """Parse an NPY (N, 1 + C) array: the log of one device, NPY_DEVICE."""
    try:
        table = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError) as error:
        raise MediaError(source, f"not an NPY IMU log: {error}") from error
    return _tables(source, {NPY_DEVICE: table}, channels, max_gap)


def _read_csv(source, data: bytes, channels: Sequence[str] | None, max_gap: float | None) -> ImuLog:
    """Parse a long-format CSV; every device's samples keep their order in the file."""
    try:
        rows = csv.reader(io.StringIO(data.decode("utf-8-sig")))
        header = [name.strip() for name in next(rows, [])]
    except (UnicodeDecodeError, csv.Error) as error:
        raise MediaError(source, f"not a CSV IMU log: {error}") from error
    if header[:2] != ["timestamp", "device"] or len(header) < 3:
        raise MediaError(source, f"IMU CSV header must be 'timestamp,device,<channels...>', got {','.join(header)!r}")
    lines, records = [], []
    try:
        for row in rows:
            if not row:
                continue
            if len(row) != len(header):
                raise MediaError(source, f"line {rows.line_num}: {len(row)} fields, the header has {len(header)}")
            lines.append(rows.line_num)
            records.append(row)
    except csv.Error as error:
        raise MediaError(source, f"line {rows.line_num}: {error}") from error
    if not records:
        raise MediaError(source, "IMU log has no samples")
    fields = np.asarray(records, dtype=str)  # (N, len(header))
    devices = np.char.strip(fields[:, 1])
    columns = [0] + _csv_columns(source, header, channels, list(dict.fromkeys(devices.tolist())))
    try:
        table = fields[:, columns].astype(np.float64)  # (N, 1 + C), parsed in C
    except ValueError:  # find the culprit for the message
        for line, row in zip(lines, records):
            for column in columns:
                _number(source, row[column], line)
        raise
    log = {}
    for device in dict.fromkeys(devices.tolist()):  # in order of first appearance
        at = np.flatnonzero(devices == device)
        log[device] = _checked(source, device, table[at], lambda i, at=at: f"line {lines[at[i]]}", max_gap)
    return log


def _csv_columns(source, header: list[str], channels: Sequence[str] | None, devices: list[str]) -> list[int]:
    """Positions in the CSV header of ``channels`` (default: every channel column); MediaError naming
    the devices and both channel counts if the log lacks one."""
    names = header[2:] if channels is None else list(channels)
    missing = [name for name in names if name not in header[2:]]
    if missing or not names:
        raise MediaError(source, f"IMU devices {devices} have {len(header) - 2} channels {header[2:]}, not the "
                                 f"{len(names)} configured {names} (the log lacks {missing or names})")
    return [header.index(name) for name in names]


def _number(source, text: str, line: int) -> float:
    try:
        return float(text)
    except ValueError:
        raise MediaError(source, f"line {line}: {text!r} is not a number") from None


def _read_npz(source, data: bytes, channels: Sequence[str] | None, max_gap: float | None) -> ImuLog:
    """Parse an NPZ of (N, 1 + C) arrays, one per device."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            tables = {device: archive[device] for device in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile) as error:
        raise MediaError(source, f"not an NPZ IMU log: {error}") from error
    if not tables:
        raise MediaError(source, "IMU log has no devices")
    return _tables(source, tables, channels, max_gap)


def _tables(source, tables: dict[str, np.ndarray], channels: Sequence[str] | None, max_gap: float | None) -> ImuLog:
    """Check (N, 1 + C) arrays by device name and split them into (timestamps, values)."""
    log = {}
    for device, table in tables.items():
        if table.ndim != 2 or table.shape[1] < 2 or not np.issubdtype(table.dtype, np.number):
            reason = f"expected a numeric (N, 1 + C) array, got {table.dtype} {table.shape}"
            raise MediaError(source, f"IMU device {device!r}: {reason}")
        if channels is not None and table.shape[1] - 1 != len(channels):
            reason = f"has {table.shape[1] - 1} channels, not the {len(channels)} configured {list(channels)}"
            raise MediaError(source, f"IMU device {device!r} {reason}")
        log[device] = _checked(source, device, table.astype(np.float64), lambda i: f"row {i}", max_gap)
    return log


def _checked(
    source, device: str, table: np.ndarray, where: Callable[[int], str], max_gap: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """Split a device's (N, 1 + C) table into (timestamps, values) after checking it (gaps as
    :func:`read_imu_log` says); where(i) names row i."""
    if not len(table):
        raise MediaError(source, f"IMU device {device!r} has no samples")
    bad = np.flatnonzero(~np.isfinite(table).all(axis=1))
    if len(bad):
        i = bad[0]
        raise MediaError(source, f"IMU device {device!r}: non-finite value at {where(i)} (time {table[i, 0]:g} s)")
    stalled = np.flatnonzero(np.diff(table[:, 0]) <= 0)
    if len(stalled):
        i = stalled[0] + 1
        reason = f"timestamp {table[i, 0]:g} s at {where(i)} does not increase (previous {table[i - 1, 0]:g} s)"
        raise MediaError(source, f"IMU device {device!r}: {reason}")
    _check_gaps(source, device, table[:, 0], where, max_gap)
    return table[:, 0], table[:, 1:]


def _check_gaps(source, device: str, times: np.ndarray, where: Callable[[int], str], max_gap: float | None) -> None:
    """MediaError at the first gap of a device's increasing timestamps (N,)."""
    if len(times) < 2:
        return
    steps = np.diff(times)
    period = float(np.median(steps))
    limit = GAP_PERIODS * period if max_gap is None else max_gap
    slack = _TIME_ULPS * np.spacing(np.abs(times).max())  # 8.3 - 8.2 = 0.1 + 1.4e-15: no gap over 0.1
    gaps = np.flatnonzero(steps > limit + slack)
    if len(gaps):
        i = gaps[0]
        allowed = (f"{GAP_PERIODS:g} times its sampling period {period:.4g} s" if max_gap is None
                   else f"max_gap {max_gap:g} s")
        reason = (f"gap of {steps[i]:.4g} s from {times[i]:g} to {times[i + 1]:g} s at {where(i + 1)} "
                  f"(more than {allowed}): samples are missing")
        raise MediaError(source, f"IMU device {device!r}: {reason}")


def resample_imu(
    log: ImuLog,
    start: float,
    end: float,
    rates: Mapping[str, float],
    path: str = "",
) -> dict[str, torch.Tensor]:
    """{device: (round(rate * (end - start)), C) float32}: each device of ``rates`` linearly interpolated
    at t = start + j / rate (``log`` as :func:`read_imu_log` checked it, gaps included).

    MediaError(path, ...) for an empty span, and naming the device if it is missing from the log or
    if its samples do not reach from start to the last interpolated time; a sample holds for one of
    the device's sampling intervals, so the last one covers up to one interval after it.
    """
    if not end > start:
        raise MediaError(path, f"empty span [{start:g}, {end:g}) s: a clip of no duration has no IMU signal")
    resampled = {}
    for device, rate in rates.items():
        if not rate > 0:
            raise ValueError(f"resample_imu: device {device!r} has rate {rate}, must be positive")
        if device not in log:
            raise MediaError(path, f"IMU device {device!r} is missing; the log has {sorted(log)}")
        times, values = log[device]
        query = start + np.arange(round(rate * (end - start))) / rate
        last = query[-1] if len(query) else start
        # a sample holds until the next one: a 10 Hz log ending at 1.9 s covers up to 2.0 s
        period = float(np.median(np.diff(times))) if len(times) > 1 else 0.0
        if times[0] > start + _TIME_TOLERANCE or times[-1] < last - period - _TIME_TOLERANCE:
            raise MediaError(
                path, f"IMU device {device!r} covers [{times[0]:g}, {times[-1]:g}] s, not the span [{start:g}, {end:g})"
            )
        columns = [np.interp(query, times, values[:, c]) for c in range(values.shape[1])]
        resampled[device] = torch.from_numpy(np.stack(columns, axis=-1)).float()
    return resampled
