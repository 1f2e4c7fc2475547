"""Reading a source checkpoint for conversion, and checking its keys against a layout.

Accepted sources: a `.safetensors` file; a Hugging Face directory (`config.json` and
`model.safetensors`, sharded `model.safetensors.index.json`, or `pytorch_model.bin`); a pickle
(`.pth/.pt/.bin/.ckpt`). Unpickling can run arbitrary code, so pickles are refused unless the
caller passes allow_pickle (`--allow_pickle`); even then they are read with
`torch.load(weights_only=True)`, which only rebuilds tensors and plain containers.
"""

import argparse
import json
import pickle
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
WRAPPERS = ("model", "module", "model_state", "state_dict")  # training-script checkpoints: the weights' entry
PREFIXES = ("_orig_mod.", "module.")  # torch.compile and DataParallel / DeepSpeed
PREPROCESSOR_FILES = ("preprocessor_config.json", "video_preprocessor_config.json")
_LISTED = 40  # keys named per list in a mismatch message


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise ValueError(f"cannot read {path}: {error} (truncated or not a safetensors file?)") from error


def _read_pickle(path: Path, allow_pickle: bool):
    if not allow_pickle:
        raise ValueError(f"{path} is a pickle file: unpickling can run arbitrary code hidden in it. If you trust its "
                         f"source, pass --allow_pickle (allow_pickle=True); it is then read with "
                         f"torch.load(weights_only=True). Converting it to safetensors once avoids the risk later.")
    try:
        # Training scripts store their argparse.Namespace next to the weights (VideoMAE's 'args').
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as error:
        raise ValueError(f"cannot read {path} with torch.load(weights_only=True): {error}") from error


def _tensors(entry) -> bool:
    return isinstance(entry, dict) and bool(entry) and all(isinstance(v, torch.Tensor) for v in entry.values())


def unwrap(loaded, path: Path) -> dict[str, torch.Tensor]:
    """The state dict inside a loaded checkpoint: itself when it holds tensors only, else its
    first `WRAPPERS` entry that does (non-tensor extras in that entry are dropped)."""
    if _tensors(loaded):
        return dict(loaded)
    if isinstance(loaded, dict):
        for name in WRAPPERS:
            entry = loaded.get(name)
            if isinstance(entry, dict) and any(isinstance(v, torch.Tensor) for v in entry.values()):
                return {k: v for k, v in entry.items() if isinstance(v, torch.Tensor)}
        raise ValueError(f"{path}: no state dict found; top-level keys {sorted(map(str, loaded))}, "
                         f"looked for tensors or one of {list(WRAPPERS)}")
    raise ValueError(f"{path}: holds a {type(loaded).__name__}, not a state dict")


def strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keys without leading `_orig_mod.` / `module.` (any order, repeated) or inner `._orig_mod.`."""
    out = {}
    for key, value in state.items():
        while key.startswith(PREFIXES):
            key = key.split(".", 1)[1]
        out[key.replace("._orig_mod.", ".")] = value
    return out


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read {path}: {error}") from error


def _read_directory(folder: Path, allow_pickle: bool) -> tuple[object, dict]:
    config = _read_json(folder / "config.json") if (folder / "config.json").is_file() else {}
    for name in PREPROCESSOR_FILES:  # the processor's normalisation, unless config.json has one
        if (folder / name).is_file():
            processor = _read_json(folder / name)
            for key in ("image_mean", "image_std"):
                if key in processor:
                    config.setdefault(key, processor[key])
    if (folder / "model.safetensors").is_file():
        return _read_safetensors(folder / "model.safetensors"), config
    if (folder / "model.safetensors.index.json").is_file():
        shards = sorted(set(_read_json(folder / "model.safetensors.index.json")["weight_map"].values()))
        state = {}
        for shard in shards:
            state.update(_read_safetensors(folder / shard))
        return state, config
    if (folder / "pytorch_model.bin").is_file():
        return _read_pickle(folder / "pytorch_model.bin", allow_pickle), config
    raise FileNotFoundError(f"{folder}: no model.safetensors, model.safetensors.index.json or pytorch_model.bin")


def read_source(src: str | Path, allow_pickle: bool = False) -> tuple[dict[str, torch.Tensor], dict]:
    """(state dict, source config) of a checkpoint file or Hugging Face directory.

    The config is config.json's content plus `image_mean` / `image_std` from a processor config
    ({} for a bare file). The state dict is unwrapped (`WRAPPERS`) and prefix-stripped (`PREFIXES`).
    """
    path = Path(src)
    if path.is_dir():
        loaded, config = _read_directory(path, allow_pickle)
    elif not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    elif path.suffix == ".safetensors":
        loaded, config = _read_safetensors(path), {}
    elif path.suffix in PICKLE_SUFFIXES:
        loaded, config = _read_pickle(path, allow_pickle), {}
    else:
        raise ValueError(f"{path}: unknown checkpoint kind {path.suffix!r}; expected a .safetensors file, "
                         f"a pickle ({', '.join(PICKLE_SUFFIXES)}) or a Hugging Face model directory")
    return strip_prefixes(unwrap(loaded, path)), config


def _named(keys: list[str]) -> str:
    shown = ", ".join(keys[:_LISTED])
    return f"[{shown}{f', ... ({len(keys) - _LISTED} more)' if len(keys) > _LISTED else ''}]"


def check_keys(state: dict, expected, layout: str) -> None:
    """A ValueError naming `layout` and listing the missing and the unexpected keys (both sorted)
    unless the keys of `state` are exactly `expected`."""
    expected = set(expected)
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise ValueError(f"{layout}: the checkpoint does not have the expected keys; missing keys {_named(missing)}; "
                         f"unexpected keys {_named(unexpected)}")
