"""Dataset layouts on disk -> one table of clips (a ``datasets.Dataset``) that MediaDataset reads.

Every layout returns the same columns:
  video, audio, imu: str absolute path or None (audio None: the video's own audio track, if any);
  caption: str caption TEXT or None (class_folder reads it from ``<clip>.txt``);
  label: int64 class index, -1 where unknown; ``features["label"]`` is a ClassLabel when the
    layout has labels, else Value("int64");
  start, end: float seconds (a span within the files, on the video's time base) or None (the whole file).
A row whose file does not exist is kept (MediaDataset skips it at read time); :func:`missing_files`
lists them. Bad layout input (an unreadable or non-UTF-8 list, a missing column, an unparsable row,
a label that is not one class) raises :class:`LayoutError` naming the file and the line. A caption
file that cannot be read leaves its clip without a caption and is logged as a warning (with the
row, for :func:`layout_problems`). Nothing here touches the network: tables are built in memory
with ``Dataset.from_dict``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import datasets
import gin

from mmmae.config import ConfigError

logger = logging.getLogger(__name__)

MEDIA_COLUMNS = ("video", "audio", "imu")
COLUMNS = (*MEDIA_COLUMNS, "caption", "label", "start", "end")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm")

Row = dict[str, Any]
PROBLEM = "layout_problem"  # the log record attribute holding a row problem: {"row", "column", "path", "reason"}


class LayoutError(ConfigError):
    """A layout file (manifest, list, split, labels) that cannot be used; the message names the file and line.

    ``message`` holds the message alone (gin appends the configurable's name to str())."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def layout_features(class_names: Sequence[str] | None) -> datasets.Features:
    """The columns every layout returns; label is a ClassLabel over ``class_names`` when given."""
    label = datasets.ClassLabel(names=list(class_names)) if class_names is not None else datasets.Value("int64")
    return datasets.Features({
        **{column: datasets.Value("string") for column in (*MEDIA_COLUMNS, "caption")},
        "label": label,
        "start": datasets.Value("float64"),
        "end": datasets.Value("float64"),
    })


def _table(rows: list[Row], class_names: Sequence[str] | None) -> datasets.Dataset:
    """Rows (dicts with any subset of COLUMNS) -> a Dataset with all COLUMNS, defaults filled in."""
    defaults = {"label": -1}
    columns = {c: [row.get(c, defaults.get(c)) for row in rows] for c in COLUMNS}
    return datasets.Dataset.from_dict(columns, features=layout_features(class_names))


def _bad(path: str | os.PathLike, line: int | str, reason: str) -> LayoutError:
    return LayoutError(f"{os.fspath(path)}:{line}: {reason}")


def _not_utf8(error: UnicodeDecodeError) -> str:
    """Why bytes are not UTF-8 text, with the fix."""
    return f"not UTF-8 text (byte 0x{error.object[error.start]:02x} at offset {error.start}); save the file as UTF-8"


def _decoded(path: str | os.PathLike, data: bytes) -> str:
    """data as UTF-8 text (a BOM dropped); LayoutError naming the line of the first byte that is not."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise _bad(path, data[:error.start].count(b"\n") + 1, _not_utf8(error)) from None


def _read_text(path: str | os.PathLike) -> str:
    """The whole of a layout file as text; LayoutError if it cannot be read or is not UTF-8."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as error:
        raise LayoutError(f"{os.fspath(path)}: cannot read: {error.strerror or error}") from None
    return _decoded(path, data)


def _absolute(path: str | os.PathLike) -> str:
    return os.path.abspath(os.path.expanduser(os.fspath(path)))


def _text_lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """(line number from 1, stripped text) of the file's non-blank lines."""
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if line.strip():
            yield number, line.strip()


def _csv_rows(
    path: str | os.PathLike, required: Iterable[str], allowed: Iterable[str] | None = None
) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) of a headed CSV; checks the header has ``required`` (and only ``allowed``)
    columns and that every row has exactly the header's number of fields."""
    reader = csv.DictReader(io.StringIO(_read_text(path), newline=""), skipinitialspace=True)
    try:
        header = [name.strip() for name in reader.fieldnames or []]
        reader.fieldnames = header
        missing = [name for name in required if name not in header]
        if missing:
            raise _bad(path, 1, f"missing column(s) {missing} in header {header}")
        if allowed is not None and (unknown := [name for name in header if name not in allowed]):
            raise _bad(path, 1, f"unknown column(s) {unknown}; allowed: {list(allowed)}")
        for row in reader:
            if None in row or None in row.values():
                raise _bad(path, reader.line_num, f"expected {len(header)} fields {header}")
            yield reader.line_num, row
    except csv.Error as error:
        raise _bad(path, reader.line_num, f"not a valid CSV line: {error}") from None


def _time(value: Any, path: str | os.PathLike, line: int | str, name: str) -> float | None:
    """A start/end cell -> float seconds >= 0, or None where empty."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise _bad(path, line, f"{name}={value!r} is not a number of seconds") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise _bad(path, line, f"{name}={value!r} must be a finite time >= 0")
    return seconds


def _span(start: Any, end: Any, path: str | os.PathLike, line: int | str) -> dict[str, float | None]:
    span = {"start": _time(start, path, line, "start"), "end": _time(end, path, line, "end")}
    if span["start"] is not None and span["end"] is not None and span["start"] >= span["end"]:
        raise _bad(path, line, f"start {span['start']} is not before end {span['end']}")
    return span


def _int_label(value: Any) -> int | None:
    """``value`` as a class index if it is an int or an integer string, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _one_class(value: Any, path: str | os.PathLike, line: int | str) -> Any:
    """A label cell as one class (an int, a whole-number float as int, or a name); LayoutError for a
    list, an object, a boolean or a fractional number (a clip has one class)."""
    text = value.strip() if isinstance(value, str) else ""
    listed = isinstance(value, (list, tuple, dict)) or (text[:1], text[-1:]) in (("[", "]"), ("{", "}"))
    if listed or isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise _bad(path, line, f"label {value!r} is not one class: give an integer class index or a class name "
                               "(one label per clip)")
    return int(value) if isinstance(value, float) else value


def _no_label(value: Any) -> bool:
    """None, an empty cell or -1: the row has no label."""
    return value is None or str(value).strip() in ("", "-1")


def _encode_labels(
    labels: list[tuple[int, Any]], path: str | os.PathLike, classes: Sequence[str] | None = None
) -> tuple[list[int], list[str] | None]:
    """(line, raw label) pairs -> (class indices, -1 where empty; class names or None if no labels).

    Integer labels are indices (names "0".."max" unless ``classes``; -1 none); other labels are names,
    indexed in ``classes`` or else in their sorted set.
    """
    labels = [(line, _one_class(value, path, line)) for line, value in labels]
    present = [(line, value) for line, value in labels if not _no_label(value)]
    if not present and classes is None:
        return [-1] * len(labels), None
    if classes is None and all(_int_label(value) is not None for _, value in present):
        names = [str(i) for i in range(max(_int_label(value) for _, value in present) + 1)]
    else:
        names = list(classes) if classes is not None else sorted({str(value).strip() for _, value in present})
    index = {name: i for i, name in enumerate(names)}
    encoded = []
    for line, value in labels:
        if _no_label(value):
            encoded.append(-1)
        elif str(value).strip() in index:
            encoded.append(index[str(value).strip()])
        elif (number := _int_label(value)) is not None and 0 <= number < len(names):
            encoded.append(number)
        else:
            raise _bad(path, line, f"label {value!r} is not one of the {len(names)} classes")
    return encoded, names


@gin.configurable(module="mmmae")
def class_folder(
    root: str | os.PathLike,
    extensions: Sequence[str] = VIDEO_EXTENSIONS,
    split_file: str | os.PathLike | None = None,
    audio_in_video: bool = False,
) -> datasets.Dataset:
    """root/<class>/<clip><ext> (UCF101, HMDB51): one row per video, label = index of its class
    folder in sorted order. Siblings of the clip set the other columns: ``<clip>.wav`` audio,
    ``<clip>.csv`` (else ``.npz``, else ``.npy``) imu, the text of ``<clip>.txt`` caption. Without a wav,
    ``audio_in_video`` takes the audio from the video file's own audio track.

    ``split_file`` (UCF101 trainlist01.txt / testlist01.txt: "Class/clip.avi [label]" lines,
    paths relative to root; its label is ignored) restricts the rows to its clips, in its order.
    """
    root = Path(_absolute(root))
    if not root.is_dir():
        raise LayoutError(f"class_folder.root {root} is not a directory")
    suffixes = {ext.lower() for ext in extensions}
    folders = {entry.name: set(os.listdir(entry.path)) for entry in os.scandir(root)
               if entry.is_dir() and not entry.name.startswith(".")}
    if split_file is None:
        clips = sorted((name, file) for name, files in folders.items() for file in files
                       if os.path.splitext(file)[1].lower() in suffixes)
    else:
        clips = list(_split_file_clips(split_file))
    classes = sorted(set(folders) | {name for name, _ in clips})
    label = {name: i for i, name in enumerate(classes)}
    rows = []
    for name, file in clips:
        siblings = folders.get(name, set())
        stem = os.path.splitext(file)[0]
        row = {"video": str(root / name / file), "label": label[name]}
        if f"{stem}.wav" in siblings:
            row["audio"] = str(root / name / f"{stem}.wav")
        elif audio_in_video:
            row["audio"] = row["video"]
        imu = next((f"{stem}{ext}" for ext in (".csv", ".npz", ".npy") if f"{stem}{ext}" in siblings), None)
        if imu is not None:
            row["imu"] = str(root / name / imu)
        if f"{stem}.txt" in siblings:
            row["caption"] = _read_caption(root / name / f"{stem}.txt", len(rows))
        rows.append(row)
    return _table(rows, classes)


def _read_caption(path: Path, row: int) -> str | None:
    """The stripped text of a caption file, or None (the clip has no caption) after logging, with a
    PROBLEM record for row ``row``, why it cannot be read (a directory, not UTF-8, unreadable)."""
    try:
        return path.read_bytes().decode("utf-8-sig").strip()
    except UnicodeDecodeError as error:
        reason = _not_utf8(error)
    except OSError as error:
        reason = f"cannot read: {error.strerror or error}"
    problem = {"row": row, "column": "caption", "path": str(path), "reason": reason}
    logger.warning("caption %s: %s; its clip is used without a caption", path, reason, extra={PROBLEM: problem})
    return None


@contextlib.contextmanager
def layout_problems() -> Iterator[list[dict]]:
    """Collect the row problems layouts report while tables are built in this block, as
    [{"row", "column", "path", "reason"}] (the list fills as they are logged)."""
    found: list[dict] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if hasattr(record, PROBLEM):
                found.append(getattr(record, PROBLEM))

    handler = Collect(logging.WARNING)
    logger.addHandler(handler)
    try:
        yield found
    finally:
        logger.removeHandler(handler)


def _split_file_clips(split_file: str | os.PathLike) -> Iterator[tuple[str, str]]:
    """(class, clip file name) per line of a UCF101-style split file."""
    for line, text in _text_lines(split_file):
        fields = text.split()
        parts = fields[0].replace("\\", "/").split("/")
        if len(fields) > 2 or len(parts) != 2 or not all(parts) or (len(fields) == 2 and _int_label(fields[1]) is None):
            raise _bad(split_file, line, f"expected 'Class/clip.ext [label]', got {text!r}")
        yield parts[0], parts[1]


@gin.configurable(module="mmmae")
def kinetics_csv(csv_path: str | os.PathLike, root: str | os.PathLike, extension: str = ".mp4") -> datasets.Dataset:
    """An official Kinetics annotation CSV (label, youtube_id, time_start, time_end, split; label
    absent in test sets): video = root/<label>/<youtube_id>_<time_start:06d>_<time_end:06d><extension>,
    or the same under root/<split>/ (spaces in the label may be underscores in the folder name;
    without labels, root/<name> or root/<split>/<name>). The first existing candidate is used,
    else the first. Clips are already trimmed, so start and end are None. Class names sorted.
    """
    root = Path(_absolute(root))
    rows, labels = [], []
    for line, row in _csv_rows(csv_path, required=("youtube_id", "time_start", "time_end")):
        times = [_time(row[key], csv_path, line, key) for key in ("time_start", "time_end")]
        if None in times or any(not t.is_integer() for t in times):
            given = f"{row['time_start']!r}, {row['time_end']!r}"
            raise _bad(csv_path, line, f"time_start/time_end must be whole seconds, got {given}")
        name = f"{row['youtube_id'].strip()}_{int(times[0]):06d}_{int(times[1]):06d}{extension}"
        label = (row.get("label") or "").strip()
        folders = [label, label.replace(" ", "_")] if label else [""]
        bases = [root] + ([root / row["split"].strip()] if (row.get("split") or "").strip() else [])
        candidates = [base / folder / name for base in bases for folder in dict.fromkeys(folders)]
        rows.append({"video": str(next((c for c in candidates if c.exists()), candidates[0]))})
        labels.append((line, label or None))
    ids, names = _encode_labels(labels, csv_path)
    for row, label in zip(rows, ids):
        row["label"] = label
    return _table(rows, names)


@gin.configurable(module="mmmae")
def videomae_list(list_path: str | os.PathLike, root: str | os.PathLike | None = None) -> datasets.Dataset:
    """VideoMAE's list files: "path label" lines (space separated; the path may contain spaces,
    the label is the last field, an integer class index). Relative paths are under ``root``
    (default: the list file's folder). Class names are "0".."max label"."""
    base = _absolute(root if root is not None else Path(_absolute(list_path)).parent)
    rows, labels = [], []
    for line, text in _text_lines(list_path):
        fields = text.rsplit(None, 1)
        if len(fields) != 2 or _int_label(fields[1]) is None or _int_label(fields[1]) < 0:
            raise _bad(list_path, line, f"expected 'path label' with an integer label >= 0, got {text!r}")
        rows.append({"video": _absolute(os.path.join(base, os.path.expanduser(fields[0])))})
        labels.append((line, int(fields[1])))
    ids, names = _encode_labels(labels, list_path)
    return _table([dict(row, label=label) for row, label in zip(rows, ids)], names)


@gin.configurable(module="mmmae")
def ssv2_json(
    json_path: str | os.PathLike, labels_path: str | os.PathLike, root: str | os.PathLike, extension: str = ".webm"
) -> datasets.Dataset:
    """Something-Something v2: a train/validation/test JSON list of {"id", "label", "template",
    "placeholders"} and the labels JSON {template without brackets: "index"}. video =
    root/<id><extension>; label from the template (-1 where absent, as in the test set); caption =
    the entry's "label" text (the template filled in, e.g. "putting a pen on a table")."""
    root = Path(_absolute(root))
    label_index = _load_json(labels_path)
    if not isinstance(label_index, dict):
        raise _bad(labels_path, 1, "expected an object {template: index}")
    names: list[str | None] = [None] * len(label_index)
    for template, index in label_index.items():
        number = _int_label(index)
        if number is None or not 0 <= number < len(names) or names[number] is not None:
            reason = f"index {index!r} is not a unique integer in [0, {len(names)})"
            raise _bad(labels_path, f"entry {template!r}", reason)
        names[number] = template
    entries = _load_json(json_path)
    if not isinstance(entries, list):
        raise _bad(json_path, 1, "expected a list of {id, label, template, placeholders}")
    rows = []
    for number, entry in enumerate(entries):
        where = f"entry {number}"
        if not isinstance(entry, dict) or "id" not in entry:
            raise _bad(json_path, where, f"missing 'id' in {entry!r}")
        row = {"video": str(root / f"{entry['id']}{extension}"), "caption": entry.get("label")}
        if "template" in entry:
            template = str(entry["template"]).replace("[", "").replace("]", "")
            if template not in label_index:
                raise _bad(json_path, where, f"template {template!r} is not in {os.fspath(labels_path)}")
            row["label"] = int(label_index[template])
        rows.append(row)
    return _table(rows, names)


def _load_json(path: str | os.PathLike) -> Any:
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as error:
        raise _bad(path, error.lineno, f"invalid JSON: {error.msg}") from None


@gin.configurable(module="mmmae")
def manifest(path: str | os.PathLike, classes: Sequence[str] | None = None) -> datasets.Dataset:
    """A CSV (headed) or JSONL (one object a line) manifest with any subset of the columns video,
    audio, imu, caption, label, start, end, and at least one of video, audio, imu. Media paths are
    relative to the manifest's folder (absolute ones kept); empty cells are None.

    Labels: names (sorted, or indexed in ``classes``, which fixes the class list so that train and
    validation manifests agree) or integer indices.
    """
    base = Path(_absolute(path)).parent
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        records = _csv_rows(path, required=(), allowed=COLUMNS)
    elif suffix in (".jsonl", ".ndjson"):
        records = _jsonl_rows(path)
    else:
        raise LayoutError(f"{os.fspath(path)}: manifest must be .csv or .jsonl, got {suffix!r}")
    rows, labels = [], []
    for line, record in records:
        row = {c: _media_path(record.get(c), base, path, line) for c in MEDIA_COLUMNS}
        if all(value is None for value in row.values()):
            raise _bad(path, line, f"no media: none of {list(MEDIA_COLUMNS)} is given")
        caption = record.get("caption")
        if isinstance(caption, (list, dict)):
            raise _bad(path, line, f"caption {caption!r} must be one text string")
        row["caption"] = str(caption) if caption is not None and str(caption) != "" else None
        row.update(_span(record.get("start"), record.get("end"), path, line))
        rows.append(row)
        labels.append((line, record.get("label")))
    ids, names = _encode_labels(labels, path, classes)
    return _table([dict(row, label=label) for row, label in zip(rows, ids)], names)


def _jsonl_rows(path: str | os.PathLike) -> Iterator[tuple[int, dict[str, Any]]]:
    for line, text in _text_lines(path):
        try:
            record = json.loads(text)
        except json.JSONDecodeError as error:
            raise _bad(path, line, f"invalid JSON: {error.msg}") from None
        if not isinstance(record, dict):
            raise _bad(path, line, f"expected a JSON object, got {text!r}")
        if unknown := [key for key in record if key not in COLUMNS]:
            raise _bad(path, line, f"unknown column(s) {unknown}; allowed: {list(COLUMNS)}")
        yield line, record


def _media_path(value: Any, base: Path, path: str | os.PathLike, line: int) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _bad(path, line, f"a media path must be a string, got {value!r}")
    return _absolute(os.path.join(base, os.path.expanduser(value)))


def missing_files(dataset: datasets.Dataset) -> list[str]:
    """The media paths (video, audio, imu) of ``dataset`` that do not exist, each once, in row order."""
    paths = dict.fromkeys(
        path for row in dataset.select_columns(list(MEDIA_COLUMNS)) for path in row.values() if path is not None
    )
    return [path for path in paths if not os.path.exists(path)]
