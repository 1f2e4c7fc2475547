"""`mmmae validate`: read every row of a media dataset through the dataset's own code
(:meth:`MediaDataset.read`, as training does) and report what is wrong where, never stopping early.

A recipe's datasets are checked as it configures them (shapes, rates, channels, spans); a folder or
manifest alone by a MediaDataset with the defaults that decodes each video whole (:func:`source_dataset`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import datasets
import gin
import numpy as np
from tqdm import tqdm

from mmmae.config import ConfigError
from mmmae.data.media.clip_sampling import ClipSelection, DenseSampling
from mmmae.data.media.dataset import MediaDataset
from mmmae.data.media.errors import MediaError, source_name
from mmmae.data.media.imu_reader import read_imu_log
from mmmae.data.media.layouts import MEDIA_COLUMNS, class_folder, layout_problems, manifest
from mmmae.data.transforms import CenterCrop, VideoTransform

CHECK_SIZE = 16  # px: a source alone is read with its frames resized and cropped to this (any size trains)
SPAN_WITHOUT_VIDEO = 0.1  # s: what a folder or manifest without video is checked over (from each row's start)
DATA_ATTRIBUTES = ("train_data", "test_data", "data")  # where evaluations hold their datasets


def whole_clip(timestamps: np.ndarray, rng: np.random.Generator, window=None) -> ClipSelection:
    """The first and last frame of the video (or of the row's window): reading them decodes every
    frame between. The span is the first two frame intervals, so that clips of any length at one
    frame rate have the same shapes."""
    pair = DenseSampling(frames=2, stride=1, mode="center")(timestamps, rng, window)  # checks the timestamps
    inside = np.flatnonzero((timestamps >= window[0]) & (timestamps < window[1])) if window else np.arange(
        len(timestamps))
    start = float(timestamps[inside[0]])
    return ClipSelection(inside[[0, -1]], start, start + pair.end - pair.start)


def load_source(source: str | os.PathLike, audio_in_video: bool = False) -> datasets.Dataset:
    """A directory is read as class-per-folder (see class_folder's audio_in_video), a .csv or
    .jsonl file as a manifest."""
    path = Path(source)
    if path.is_dir():
        return class_folder(path, audio_in_video=audio_in_video)
    if path.suffix in (".csv", ".jsonl"):
        return manifest(path)
    raise ConfigError(f"{source}: expected a class-per-folder directory or a .csv/.jsonl manifest")


def imu_rates_of(rows: datasets.Dataset, devices: Sequence[str] | None) -> dict[str, float]:
    """{device: Hz} to read a source's IMU logs at: ``devices`` (else those of the first log that
    reads) at the rates that log samples them (50 Hz for a device it lacks)."""
    for path in (path for path in rows["imu"] if path):
        try:
            log = read_imu_log(path)
        except MediaError:
            continue
        rates = {name: 1 / float(np.median(np.diff(times))) for name, (times, _) in log.items() if len(times) > 1}
        return {name: rates.get(name, 50.0) for name in devices} if devices else rates or {"imu": 50.0}
    return dict.fromkeys(devices or ["imu"], 50.0)


def source_dataset(source: str | os.PathLike, audio_in_video: bool = False, imu_devices: Sequence[str] | None = None,
                   max_gap: float | None = None) -> MediaDataset:
    """A MediaDataset with the defaults over a folder or manifest, reading every modality its rows
    have: each video whole (:func:`whole_clip`; frames cropped to CHECK_SIZE, since a recipe crops
    them), audio and IMU over its first two frame intervals; IMU logs must hold ``imu_devices``
    (default: the first log's devices)."""
    rows = load_source(source, audio_in_video)
    columns = {"video": "video", "audio": "audio", "imu": "imu", "text": "caption"}
    modalities = [m for m, column in columns.items() if any(value is not None for value in rows[column])]
    return MediaDataset(rows, modalities=modalities or ["video"], sampling=whole_clip,
                        transform=VideoTransform([CenterCrop(CHECK_SIZE)]),
                        span_seconds=None if "video" in modalities else SPAN_WITHOUT_VIDEO,
                        imu_rates=imu_rates_of(rows, imu_devices) if "imu" in modalities else None,
                        max_gap=max_gap, train=False)


def source_datasets(source: str | os.PathLike, audio_in_video: bool = False, imu_devices: Sequence[str] | None = None,
                    max_gap: float | None = None) -> list[tuple[str, MediaDataset, list[dict]]]:
    """[(source, :func:`source_dataset`, its layout problems)]; ConfigError if the layout is unusable."""
    dataset, problems = _build(lambda: source_dataset(source, audio_in_video, imu_devices, max_gap), os.fspath(source))
    return [(os.fspath(source), dataset, problems)]


def _columns(row: dict, path: str) -> str:
    """The row's media column holding ``path`` (video where the video file also holds the audio);
    "row" where none does or the media are bytes (a streamed row: the reason says which)."""
    names = [column for column in MEDIA_COLUMNS if row.get(column) is not None and source_name(row[column]) == path]
    return names[0] if names and path != source_name(b"") else "row"


def _paths(row: dict) -> str:
    """Where the row's media are: its shard member (streamed rows) or its media paths."""
    return row.get("shard_member") or ", ".join(source_name(row[c]) for c in MEDIA_COLUMNS if row.get(c) is not None)


def row_problem(row: dict, index: int, error: Exception) -> dict:
    """{"row", "column", "path", "reason"} for an error reading the row: a MediaError's path and
    reason, or, for anything else, the row's paths and "unexpected error: <type>: <message>"."""
    if isinstance(error, MediaError):
        streamed = error.path == source_name(b"")  # name the shard member the bytes came from
        path = (row.get("shard_member") or error.path) if streamed else error.path
        return {"row": index, "column": _columns(row, error.path), "path": path, "reason": error.reason}
    return {"row": index, "column": "row", "path": _paths(row),
            "reason": f"unexpected error: {type(error).__name__}: {error}"}


def check_dataset(dataset: MediaDataset, name: str, problems: Sequence[dict] = ()) -> dict:
    """{"dataset", "rows", "problems": [{"row", "column", "path", "reason"}]}: every row read with
    ``dataset.read`` (as training reads it), each failure caught and reported with ``problems``
    (the layout's), in row order."""
    found = list(problems)
    count = 0
    total = len(dataset.rows) if isinstance(dataset.rows, datasets.Dataset) else None
    for index, row in enumerate(tqdm(dataset.rows, total=total, desc=f"validate {name}", unit="row")):
        count += 1
        try:
            dataset.read(row, index)
        except Exception as error:  # noqa: BLE001 - every row is reported, whatever went wrong
            found.append(row_problem(row, index, error))
    return {"dataset": name, "rows": count, "problems": sorted(found, key=lambda problem: problem["row"])}


def _build(make: Callable, binding: str):
    """make(), with the row problems its layouts report; ConfigError naming ``binding`` if it fails."""
    with layout_problems() as problems:
        try:
            return make(), problems
        except Exception as error:  # noqa: BLE001 - a recipe that cannot build its data is a message, not a crash
            message = getattr(error, "message", None) or f"{type(error).__name__}: {error}"
            raise ConfigError(f"cannot build {binding}: {message}") from None


def recipe_datasets() -> list[tuple[str, MediaDataset, list[dict]]]:
    """(binding, dataset, layout problems) of every media dataset the parsed gin config trains or
    evaluates on: ``pretrain.dataset``, then each evaluation's train_data / test_data / data."""
    from mmmae.eval.evaluate import evaluations  # the evaluations import the models: only for recipes

    found = []
    try:
        reference = gin.query_parameter("pretrain.dataset")
    except ValueError:
        reference = None
    if reference is not None:
        dataset, problems = _build(reference.scoped_configurable_fn, "pretrain.dataset")
        found.append(("pretrain.dataset", dataset, problems))
    tasks, problems = _build(evaluations, "evaluations")
    for task in tasks:
        for attribute in DATA_ATTRIBUTES:
            dataset = getattr(task, attribute, None)
            if isinstance(dataset, MediaDataset):
                found.append((f"{type(task).__name__}.{attribute}", dataset, _caption_problems(problems, dataset)))
    media = [entry for entry in found if isinstance(entry[1], MediaDataset)]
    if not media:
        raise ConfigError("the recipe reads no media: neither pretrain.dataset nor an evaluation's data is a "
                          "MediaDataset (validate checks media files; bind MediaDataset.source to a layout)")
    return media


def _caption_problems(problems: list[dict], dataset: MediaDataset) -> list[dict]:
    """The layout problems that belong to ``dataset``'s rows (a caption beside the row's video)."""
    rows = dataset.rows
    if not isinstance(rows, datasets.Dataset):
        return []
    return [p for p in problems if p["row"] < len(rows) and rows[p["row"]]["video"]
            and os.path.splitext(rows[p["row"]]["video"])[0] == os.path.splitext(p["path"])[0]]


def _identity(dataset: MediaDataset) -> tuple:
    """What validating a dataset depends on: its rows and the shapes it is configured to read."""
    if not isinstance(dataset.rows, datasets.Dataset):
        return (id(dataset),)
    rows = dataset.rows.select_columns([*MEDIA_COLUMNS, "start", "end"]).to_dict()
    settings = (dataset.modalities, dataset.span_seconds, dataset.sample_rate, sorted(dataset.imu_rates.items()),
                tuple(dataset.imu_channels or ()), dataset.max_gap, dataset.text_length)
    return repr(sorted(rows.items())), repr(settings)


def check_datasets(named: Sequence[tuple[str, MediaDataset, list[dict]]]) -> list[dict]:
    """A report per dataset (:func:`check_dataset`); one whose rows and shapes match a dataset
    checked before is not read again: {"dataset", "same_as"}."""
    reports, seen = [], {}
    for name, dataset, problems in named:
        key = _identity(dataset)
        if key in seen:
            reports.append({"dataset": name, "same_as": seen[key]})
            continue
        seen[key] = name
        reports.append(check_dataset(dataset, name, problems))
    return reports


def format_report(reports: Sequence[dict]) -> str:
    """One line per problem, then a summary line per dataset."""
    lines, summaries = [], []
    for report in reports:
        if "same_as" in report:
            summaries.append(f"{report['dataset']}: the same rows and shapes as {report['same_as']} (checked there)")
            continue
        bad_rows = len({problem["row"] for problem in report["problems"]})
        lines += [f"{report['dataset']} row {p['row']} {p['column']} {p['path']}: {p['reason']}"
                  for p in report["problems"]]
        summaries.append(f"{report['dataset']}: {report['rows']} rows, {report['rows'] - bad_rows} readable, "
                         f"{bad_rows} with problems ({len(report['problems'])} in all)")
    return "\n".join(lines + summaries)
