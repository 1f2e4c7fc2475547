"""`mmmae validate`: open every file a dataset lists, up front, and report what is wrong where."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import datasets
import numpy as np
from tqdm import tqdm

from mmmae.data.audio_reader import read_audio
from mmmae.data.clip_sampling import ClipSelection
from mmmae.data.imu_reader import read_imu_log
from mmmae.data.layouts import class_folder, manifest
from mmmae.data.media_errors import MediaError
from mmmae.data.video_reader import probe_video, read_frames


def first_and_last(timestamps: np.ndarray, rng: np.random.Generator, window=None) -> ClipSelection:
    """A 'sampler' picking the first and the last frame (validation decodes both ends)."""
    return ClipSelection(np.array([0, len(timestamps) - 1]), float(timestamps[0]), float(timestamps[-1]))


def check_row(row: dict, imu_devices: Sequence[str] | None = None, max_gap: float = 0.1) -> list[dict]:
    """Problems of one layout row: [{"column", "path", "reason"}], empty if every file reads.

    video: opens, and its first and last frames decode; audio: the video's span (or the row's,
    or else the first 0.1 s) decodes to samples; imu: the log parses (monotonic, finite timestamps and values),
    has the required devices, no gap over max_gap seconds and covers the video's span."""
    problems = []
    span = None
    for column in ("video", "audio", "imu"):
        path = row.get(column)
        if not path:
            continue
        try:
            if column == "video":
                info = probe_video(path)
                read_frames(path, first_and_last, np.random.default_rng(0))
                span = (row.get("start") or 0.0, row.get("end") or info.duration)
            elif column == "audio":
                start = (span or (row.get("start") or 0.0,))[0]  # without a video: the first 0.1 s
                end = span[1] if span else row.get("end") or start + 0.1
                read_audio(path, start, end, sample_rate=16000)
            else:
                check_imu(path, span, imu_devices, max_gap)
        except MediaError as error:
            problems.append({"column": column, "path": error.path, "reason": error.reason})
    return problems


def check_imu(path: str, span: tuple[float, float] | None, devices: Sequence[str] | None, max_gap: float) -> None:
    """MediaError if the log does not parse, lacks a device, has a gap over max_gap or does not cover span."""
    log = read_imu_log(path)
    for name in devices or ():
        if name not in log:
            raise MediaError(path, f"no IMU device {name!r} (the log has {sorted(log)})")
    for name, (times, _) in log.items():
        gaps = np.diff(times)
        if len(gaps) and gaps.max() > max_gap:
            at = int(gaps.argmax())
            raise MediaError(path, f"device {name!r}: a gap of {gaps[at]:.3f} s after t = {times[at]:.3f} s "
                                   f"(more than max_gap {max_gap} s)")
        if span is not None and (times[0] > span[0] + max_gap or times[-1] < span[1] - max_gap):
            raise MediaError(path, f"device {name!r}: the log covers [{times[0]:.3f}, {times[-1]:.3f}] s, "
                                   f"not the video's [{span[0]:.3f}, {span[1]:.3f}] s")


def load_source(source: str | os.PathLike, audio_in_video: bool = False) -> datasets.Dataset:
    """A directory is read as class-per-folder (see class_folder's audio_in_video), a .csv or
    .jsonl file as a manifest."""
    path = Path(source)
    if path.is_dir():
        return class_folder(path, audio_in_video=audio_in_video)
    if path.suffix in (".csv", ".jsonl"):
        return manifest(path)
    raise ValueError(f"{source}: expected a class-per-folder directory or a .csv/.jsonl manifest")


def check_source(source: str | os.PathLike, imu_devices: Sequence[str] | None = None, max_gap: float = 0.1,
                 audio_in_video: bool = False) -> dict:
    """{"source", "rows", "problems": [{"row", "column", "path", "reason"}]} for every row of source."""
    rows = load_source(source, audio_in_video)
    problems = []
    for index, row in enumerate(tqdm(rows, desc=f"validate {source}", unit="row")):
        problems += [{"row": index, **problem} for problem in check_row(row, imu_devices, max_gap)]
    return {"source": str(source), "rows": len(rows), "problems": problems}


def format_report(report: dict) -> str:
    """One line per problem, then a summary line."""
    bad_rows = len({problem["row"] for problem in report["problems"]})
    lines = [f"row {p['row']} {p['column']} {p['path']}: {p['reason']}" for p in report["problems"]]
    lines.append(f"{report['source']}: {report['rows']} rows, {report['rows'] - bad_rows} readable, "
                 f"{bad_rows} with problems ({len(report['problems'])} in all)")
    return "\n".join(lines)
