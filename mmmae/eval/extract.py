"""Write a frozen encoder's features of a dataset to disk, in shards, with an index; read them back.

A feature folder holds shards of at most `shard_size` samples and `index.json`:

    {"format": "mmmae-features", "version": 1, "modality": "video", "pooled": true, "fmt": "npy",
     "num_samples": n, "absent": samples left out for lacking the modality,
     "left_out": samples left out as unreadable (each sample is written at most once),
     "arrays": {"features": {"dtype": "float32", "shape": [D]}, "labels": ..., "indices": ...},
     "index_source": "index" (the samples' own "index") | "position" (their position in the dataset),
     "shards": [{"num_samples": n_0, "files": {"features": "shard-00000.features.npy", ...}}, ...],
     "metadata": {...} (extract_run: the model's source and directory)}

Arrays per sample: features (D,) mean-pooled or (N, D) every token (`pooled=False`), valid (N,)
bool when the modality pads (text), labels () when the samples carry the `label` key, indices ().
safetensors shards hold every array in one file (shard-00000.safetensors); npy shards one file per array.
"""

import json
from collections.abc import Sequence
from pathlib import Path

import gin
import numpy as np
import torch
from safetensors.numpy import load_file, save_file
from torch.utils.data import Dataset

from mmmae.config import ConfigError
from mmmae.eval.encoded import encoded_batches
from mmmae.eval.frozen import check_modality
from mmmae.eval.loader import EvalLoader, no_samples_error

FORMATS = ("safetensors", "npy")
INDEX_FILE = "index.json"
FORMAT_NAME, FORMAT_VERSION = "mmmae-features", 1


def write_shard(directory: Path, number: int, arrays: dict[str, np.ndarray], fmt: str) -> dict[str, str]:
    """Write one shard; returns {array name: file name}."""
    stem = f"shard-{number:05d}"
    if fmt == "safetensors":
        save_file({name: np.ascontiguousarray(a) for name, a in arrays.items()}, str(directory / f"{stem}.safetensors"))
        return {name: f"{stem}.safetensors" for name in arrays}
    files = {name: f"{stem}.{name}.npy" for name in arrays}
    for name, array in arrays.items():
        np.save(directory / files[name], array, allow_pickle=False)
    return files


def clear_previous(directory: Path, overwrite: bool) -> None:
    """Remove an earlier extraction's files (listed by its index), or refuse without `overwrite`."""
    index = directory / INDEX_FILE
    if not index.exists():
        return
    if not overwrite:
        raise FileExistsError(f"{index} exists: features were already extracted into {directory} "
                              "(pass --overwrite, extract_features.overwrite = True, to replace them)")
    for shard in json.loads(index.read_text())["shards"]:
        for name in set(shard["files"].values()):
            (directory / name).unlink(missing_ok=True)
    index.unlink()


class ShardWriter:
    """A feature folder being written: `add` per-sample arrays {name: (n, ...)}, a shard of
    `shard_size` samples goes to disk as soon as it is full, `finish` writes the rest and
    index.json. The folder is made at the first shard, so a failure before leaves none behind."""

    def __init__(self, directory: Path, fmt: str, shard_size: int):
        self.directory, self.fmt, self.shard_size = directory, fmt, shard_size
        self.pending: dict[str, list[np.ndarray]] = {}
        self.shards: list[dict] = []
        self.written: list[Path] = []

    def add(self, arrays: dict[str, np.ndarray]) -> None:
        for name, array in arrays.items():
            self.pending.setdefault(name, []).append(array)
        while self._pending_count() >= self.shard_size:
            self._flush(self.shard_size)

    def _pending_count(self) -> int:
        return sum(len(a) for a in self.pending.get("features", []))

    def _flush(self, count: int) -> None:
        joined = {name: np.concatenate(parts) for name, parts in self.pending.items()}
        self.directory.mkdir(parents=True, exist_ok=True)
        files = write_shard(self.directory, len(self.shards), {name: a[:count] for name, a in joined.items()},
                            self.fmt)
        self.shards.append({"num_samples": count, "files": files})
        self.written.extend(self.directory / name for name in dict.fromkeys(files.values()))
        self.pending.update({name: [a[count:]] for name, a in joined.items()})

    def finish(self, info: dict) -> list[Path] | None:
        """Write the last shard and index.json (`info` plus the format, counts, arrays and shards);
        the files written, index.json last, or None when no sample was added."""
        if remaining := self._pending_count():
            self._flush(remaining)
        if not self.shards:
            return None
        index = {"format": FORMAT_NAME, "version": FORMAT_VERSION, **info, "fmt": self.fmt,
                 "num_samples": sum(s["num_samples"] for s in self.shards),
                 "arrays": {name: {"dtype": str(parts[0].dtype), "shape": list(parts[0].shape[1:])}
                            for name, parts in self.pending.items()},
                 "shards": self.shards}
        (self.directory / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")
        return [*self.written, self.directory / INDEX_FILE]


@gin.configurable(module="mmmae")
def extract_features(model, dataset: Dataset = gin.REQUIRED, modality: str = "video",
                     output_dir: str | Path = gin.REQUIRED, fmt: str = "safetensors", shard_size: int = 4096,
                     batch_size: int = 64, pooled: bool = True, label: str = "label",
                     overwrite: bool = False, metadata: dict | None = None) -> list[Path]:
    """Encode `dataset`'s `modality` (alone, unmasked, frozen) and write the features into
    `output_dir` (see the module docstring); samples lacking the modality, and unreadable ones,
    are left out and counted; `metadata` (e.g. the model's source) is kept in the index.
    Returns the files written: the shards' in order, then index.json."""
    if fmt not in FORMATS:
        raise ValueError(f"extract_features: fmt {fmt!r} is not one of {FORMATS}")
    if shard_size < 1 or batch_size < 1:
        raise ValueError(f"extract_features: shard_size = {shard_size}, batch_size = {batch_size}: need >= 1")
    check_modality(model, modality, "extract_features")
    directory = Path(output_dir)
    clear_previous(directory, overwrite)
    writer = ShardWriter(directory, fmt, shard_size)
    absent, index_source = 0, "position"
    loader = EvalLoader(dataset, batch_size)
    for encoded in encoded_batches(model, loader, modality, pooled):
        absent += int((~encoded.present).sum())
        if encoded.features is None:
            continue
        arrays = {"features": encoded.features}
        if encoded.valid is not None:
            arrays["valid"] = encoded.valid
        if label in encoded.batch:
            arrays["labels"] = torch.as_tensor(encoded.batch[label])[encoded.present]
        if "index" in encoded.batch:
            index_source = "index"
            arrays["indices"] = torch.as_tensor(encoded.batch["index"])[encoded.present].long()
        else:
            arrays["indices"] = encoded.positions
        shape = tuple(arrays["features"].shape[1:])
        pending = writer.pending
        if pending and (set(arrays) != set(pending) or pending["features"][0].shape[1:] != shape):
            raise ValueError(f"extract_features: the samples of {modality!r} differ in what they carry or in shape "
                             f"({sorted(pending)} {pending['features'][0].shape[1:]} then {sorted(arrays)} "
                             f"{shape}); pooled=False needs one token count for all")
        writer.add({name: array.numpy() for name, array in arrays.items()})
    files = writer.finish({"modality": modality, "pooled": pooled, "absent": absent, "left_out": loader.left_out,
                           "index_source": index_source, "metadata": metadata or {}})
    if files is None:
        raise no_samples_error("extract_features.dataset", modality, absent, loader.left_out)
    return files


def load_shard(directory: Path, shard: dict) -> dict[str, np.ndarray]:
    """One shard's arrays, {name: (n, ...)}, from its entry in index.json."""
    files = shard["files"]
    if all(name.endswith(".safetensors") for name in files.values()):
        tensors = {}
        for file in dict.fromkeys(files.values()):
            tensors.update(load_file(str(directory / file)))
        return {name: tensors[name] for name in files}
    return {name: np.load(directory / file, allow_pickle=False) for name, file in files.items()}


def load_features(output_dir: str | Path) -> tuple[dict[str, np.ndarray], dict]:
    """Every array of a feature folder, shards joined in order ({name: (n, ...)}), and its index."""
    directory = Path(output_dir)
    index_path = directory / INDEX_FILE
    if not index_path.is_file():
        raise FileNotFoundError(f"{index_path} does not exist: is {directory} a folder written by extract_features?")
    info = json.loads(index_path.read_text())
    if info.get("format") != FORMAT_NAME:
        raise ValueError(f"{index_path}: format {info.get('format')!r} is not {FORMAT_NAME!r}")
    shards = [load_shard(directory, shard) for shard in info["shards"]]
    return {name: np.concatenate([s[name] for s in shards]) for name in info["arrays"]}, info


def extract_run(source: str | Path, output_dir: str | Path, gin_files: Sequence[str] = (),
                gin_params: Sequence[str] = (), segment_frames: int | None = None, segment_stride: int | None = None,
                **options) -> list[Path]:
    """`mmmae extract`: features of the dataset bound to `extract_features.dataset` by the model of
    `source` (a run directory, pretrained directory or zoo name), on the GPU when there is one.

    The source's config.gin, then `gin_files` and `gin_params`, configure the model and
    `extract_features`; `options` (modality, fmt, shard_size, batch_size, pooled, label,
    overwrite) override its bindings. Segment mode (`segment_frames` set): the windows of
    `extract_segments` (mmmae/eval/segments.py) over the videos of `extract_segments.dataset`.
    Returns the files written, index.json last.
    """
    from mmmae.eval.evaluate import load_source  # evaluate imports the evaluations; keep this module light
    from mmmae.eval.segments import extract_segments  # segments imports this module

    segments = segment_frames is not None
    if segment_stride is not None and not segments:
        raise ValueError("--segment_stride needs --segment_frames (the window's length in frames)")
    if segments and {"pooled", "label"} & set(options):
        raise ValueError("--tokens has no meaning with --segment_frames (one pooled embedding a "
                         "window; every integer entry of the samples is kept)")
    files, model, _ = load_source(source, gin_files, gin_params)
    binding = "extract_segments.dataset" if segments else "extract_features.dataset"
    try:
        gin.query_parameter(binding)
    except ValueError:
        raise ConfigError(f"{files.config} (with the given files and bindings) binds no dataset to extract: bind "
                          f"{binding}, e.g. --gin_param '{binding} = @probe_test/MovingDigits()'") from None
    model.to("cuda" if torch.cuda.is_available() else "cpu")
    source_info = {"model": str(source), "model_dir": str(files.directory)}
    if segments:
        return extract_segments(model, output_dir=output_dir, metadata=source_info, segment_frames=segment_frames,
                                segment_stride=segment_stride, **options)
    return extract_features(model, output_dir=output_dir, metadata=source_info, **options)
