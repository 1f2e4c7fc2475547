"""A layout's clips packed into webdataset tar shards, and streamed back with HF ``datasets``.

A sample is the tar members ``<key>.<ext>`` for its media files (the source files' bytes
untouched, ext their lower-case extension; a file used for two columns, e.g. an mp4 that is
both video and audio, is stored once) and ``<key>.json`` = {"label", "caption", "start", "end",
"files": {column: member extension or null}}. One exception to the naming: the HF webdataset
loader decodes ``.npz`` and ``.npy`` members into arrays, so those files are stored as
``<key>.npz.bin`` (``.npy.bin``) to come back byte-identical. Keys are the row's index in the source dataset, 9 digits.
"""

from __future__ import annotations

import glob
import io
import itertools
import json
import logging
import os
import re
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import datasets
import fsspec
import gin

from mmmae.data.media.layouts import COLUMNS, MEDIA_COLUMNS

logger = logging.getLogger(__name__)

# File extensions a shard can hold, each with its tar member suffix (= its loader column).
MEDIA_EXTENSIONS = (
    "mp4", "avi", "mkv", "webm", "mov", "m4v", "wav", "flac", "mp3", "ogg", "m4a", "aac", "opus", "csv", "npz", "npy",
)
_RAW = {"npz", "npy"}  # extensions the webdataset loader would decode; stored with ".bin" appended
MEMBER_SUFFIX = {ext: f"{ext}.bin" if ext in _RAW else ext for ext in MEDIA_EXTENSIONS}

SHARD_FEATURES = datasets.Features({
    **{column: datasets.Value("binary") for column in MEDIA_COLUMNS},
    "caption": datasets.Value("string"),
    "label": datasets.Value("int64"),
    "start": datasets.Value("float64"),
    "end": datasets.Value("float64"),
    "shard_member": datasets.Value("string"),  # "<shard path>#<key>": where errors point
})
# What the webdataset loader yields for our shards: one binary column per member suffix, the json.
_TAR_FEATURES = datasets.Features({
    "__key__": datasets.Value("string"),
    "__url__": datasets.Value("string"),
    **{suffix: datasets.Value("binary") for suffix in MEMBER_SUFFIX.values()},
    "json": {
        "label": datasets.Value("int64"),
        "caption": datasets.Value("string"),
        "start": datasets.Value("float64"),
        "end": datasets.Value("float64"),
        "files": {column: datasets.Value("string") for column in MEDIA_COLUMNS},
    },
})


def _sample_members(row: dict[str, Any]) -> dict[str, bytes] | None:
    """A layout row -> {member suffix: bytes} including "json"; None if a media file is missing."""
    members: dict[str, bytes] = {}
    files: dict[str, str | None] = {}
    sources: dict[str, str] = {}  # member suffix -> the path stored under it
    for column in MEDIA_COLUMNS:
        path = row[column]
        if path is None:
            files[column] = None
            continue
        ext = os.path.splitext(path)[1].lower().lstrip(".")
        if ext not in MEMBER_SUFFIX:
            raise ValueError(f"{path}: a shard cannot hold .{ext} files; known: {list(MEDIA_EXTENSIONS)}")
        suffix = MEMBER_SUFFIX[ext]
        if sources.setdefault(suffix, path) != path:
            raise ValueError(f"{path} and {sources[suffix]}: two different .{ext} files in one sample")
        if suffix not in members:
            if not os.path.isfile(path):
                return None
            members[suffix] = Path(path).read_bytes()
        files[column] = suffix
    meta = {key: row[key] for key in ("label", "caption", "start", "end")}
    members["json"] = json.dumps({**meta, "files": files}).encode()
    return members


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644  # mtime 0: the same dataset gives the same shards
    tar.addfile(info, io.BytesIO(data))


def write_shards(dataset: datasets.Dataset, out_dir: str | os.PathLike, max_samples_per_shard: int = 256) -> list[Path]:
    """Write ``dataset`` (a layout's rows) as out_dir/shard-000000.tar, ... with at most
    ``max_samples_per_shard`` samples each; rows with a missing media file are skipped (logged).
    Returns the shard paths."""
    if max_samples_per_shard < 1:
        raise ValueError(f"max_samples_per_shard must be >= 1, got {max_samples_per_shard}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shards: list[Path] = []
    tar, count, skipped = None, 0, 0
    try:
        for index, row in enumerate(dataset):
            members = _sample_members(row)
            if members is None:
                skipped += 1
                logger.warning("write_shards: row %d skipped, a media file is missing: %s", index,
                               sorted({row[c] for c in MEDIA_COLUMNS if row[c] and not os.path.isfile(row[c])}))
                continue
            if tar is None or count == max_samples_per_shard:
                if tar is not None:
                    tar.close()
                shards.append(out_dir / f"shard-{len(shards):06d}.tar")
                tar, count = tarfile.open(shards[-1], "w"), 0
            for suffix, data in members.items():
                _add(tar, f"{index:09d}.{suffix}", data)
            count += 1
    finally:
        if tar is not None:
            tar.close()
    if skipped:
        logger.warning("write_shards: %d of %d rows skipped for missing files", skipped, len(dataset))
    return shards


def is_url(path: str | os.PathLike) -> bool:
    """Whether `path` names remote storage by an fsspec protocol (https://, s3://, gs://, hf://, ...)."""
    return "://" in os.fspath(path) and not os.fspath(path).startswith("file://")


def expand_ranges(pattern: str) -> list[str]:
    """webdataset's shard notation: every ``{first..last}`` range of integers expanded, zero-padded
    to the width of `first` (``shard-{000000..000002}.tar`` -> shard-000000.tar, ..., shard-000002.tar)."""
    ranges = list(re.finditer(r"\{(\d+)\.\.(\d+)\}", pattern))
    for bad in (r for r in ranges if int(r[1]) > int(r[2])):
        raise ValueError(f"{pattern}: the range {bad[0]} counts down; write it as {{{bad[2]}..{bad[1]}}}")
    choices = [[str(n).zfill(len(r[1])) for n in range(int(r[1]), int(r[2]) + 1)] for r in ranges]
    pieces = re.split(r"\{\d+\.\.\d+\}", pattern)
    return ["".join(p + v for p, v in zip(pieces, values)) + pieces[-1] for values in itertools.product(*choices)]


def remote_shards(pattern: str) -> list[str]:
    """The URLs of a remote pattern: its ranges expanded, wildcards (``*``, ``?``, ``[``) matched by fsspec's glob."""
    urls = []
    for url in expand_ranges(pattern):
        if glob.has_magic(url):
            fs, _ = fsspec.core.url_to_fs(url)
            urls += sorted(fs.unstrip_protocol(match) for match in fs.glob(url))
        else:
            urls.append(url)
    if not urls:
        raise FileNotFoundError(f"no shards found at {pattern}")
    return urls


def shard_paths(pattern_or_paths: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    """Shard paths: a list as given (local paths made absolute); a remote URL pattern's URLs
    (:func:`remote_shards`); a local directory's ``*.tar`` files; an existing file; else a glob
    pattern's matches, sorted, after ``{first..last}`` ranges are expanded."""
    if not isinstance(pattern_or_paths, (str, os.PathLike)):
        return [os.fspath(p) if is_url(p) else os.path.abspath(p) for p in pattern_or_paths]
    if is_url(pattern_or_paths):
        return remote_shards(os.fspath(pattern_or_paths))
    path = os.path.abspath(os.path.expanduser(os.fspath(pattern_or_paths)))
    if os.path.isdir(path):
        paths = sorted(glob.glob(os.path.join(glob.escape(path), "*.tar")))
    elif os.path.exists(path):
        paths = [path]
    else:
        paths = sorted(match for expanded in expand_ranges(path) for match in glob.glob(expanded))
    if not paths:
        raise FileNotFoundError(f"no shards found at {os.fspath(pattern_or_paths)}")
    return paths


def _row(example: dict[str, Any]) -> dict[str, Any]:
    """A loader example (member columns + json) -> the layout columns, media as bytes."""
    meta = example["json"]
    where = f"{example['__url__']}: sample {example['__key__']!r}"
    if meta is None:
        raise ValueError(f"{where} has no .json member")
    row = {key: meta[key] for key in ("label", "caption", "start", "end")}
    for column in MEDIA_COLUMNS:
        suffix = (meta["files"] or {}).get(column)
        row[column] = None if suffix is None else example.get(suffix)
        if suffix is not None and row[column] is None:
            raise ValueError(f"{where} lacks the member .{suffix} that its json names for {column}")
    if row["label"] is None:
        row["label"] = -1
    return {**{column: row[column] for column in COLUMNS}, "shard_member": f"{example['__url__']}#{example['__key__']}"}


@gin.configurable(module="mmmae")
def stream_shards(pattern_or_paths: str | os.PathLike | Sequence[str | os.PathLike]) -> datasets.IterableDataset:
    """Stream shards written by :func:`write_shards` (paths, a directory or a glob pattern) as rows
    with the layout columns, media as bytes (None where absent), plus ``shard_member``
    ("<shard path>#<key>", which error reports name); ``n_shards`` is the number of tar files, so
    DataLoader workers (and processes, mmmae.data.rank_split) split them. Remote shards stream through
    fsspec: ``https://host/data/shard-{000000..000099}.tar``, ``s3://bucket/shards/*.tar`` (s3fs,
    gcsfs etc. installed for their protocols; http needs aiohttp)."""
    files = [path if is_url(path) else glob.escape(path)  # local data_files are glob patterns
             for path in shard_paths(pattern_or_paths)]
    raw = datasets.load_dataset("webdataset", data_files={"train": files}, split="train", streaming=True,
                                features=_TAR_FEATURES)
    return raw.map(_row, remove_columns=list(_TAR_FEATURES), features=SHARD_FEATURES)

