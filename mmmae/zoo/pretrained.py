"""Pretrained weights as a directory, in Hugging Face Hub layout, that loads without unpickling.

A pretrained directory (a finished `mmmae train` run directory is one too):

    model.safetensors   the MaskedAutoencoder's state dict (encoder only with `encoder_only`)
    config.gin          gin text that alone rebuilds the model (a run's operative config)
    mmmae.json          metadata: format, modalities, sizes, training data, metrics
    README.md           the model card

`save_pretrained` writes it whole or not at all; `from_pretrained` takes such a directory, a
model-zoo name (``mmmae zoo list``) or a Hugging Face Hub repo id (read from the local Hub cache
when offline) and returns the model in eval mode. Positions are sin-cos tables built for the
input's token grid, so a loaded model runs at other frame counts, resolutions and audio lengths.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import gin
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from mmmae import __version__
from mmmae import config as mmmae_config
from mmmae.checkpoint import MODEL_FILE, TRAINER_STATE
from mmmae.config import OPERATIVE_CONFIG, parse_config
from mmmae.model import MaskedAutoencoder
from mmmae.sharded_checkpoint import MODEL_SHARDS, consolidated_state
from mmmae.zoo.model_card import model_card

METADATA_FILE = "mmmae.json"
CARD_FILE = "README.md"
FORMAT_VERSION = 1
# Keys an encoder-only export leaves out: decoders, objectives' heads, learned maskers.
PRETRAINING_ONLY = re.compile(r"^(decoder|objectives)\.|^modalities\.[^.]+\.(decoder|masker)\.")


@dataclass(frozen=True)
class PretrainedFiles:
    """Where a pretrained model's files are: the directory, weights, config, and the metadata read from it."""

    directory: Path
    weights: Path
    config: Path
    metadata: dict


def encoder_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict without the keys only pretraining needs (`PRETRAINING_ONLY`)."""
    return {k: v for k, v in model.state_dict().items() if not PRETRAINING_ONLY.search(k)}


def model_metadata(model: MaskedAutoencoder) -> dict:
    """What can be read off the model itself: modalities, encoder width/depth/heads, parameter count."""
    encoder = model.encoder
    blocks = [*encoder.blocks, *next(iter(encoder.specific.values()), [])]
    return {
        "modalities": list(model.modalities),
        "encoder": {"dim": encoder.dim, "depth": len(blocks), "heads": blocks[0].attn.heads if blocks else None},
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def save_pretrained(model: MaskedAutoencoder, directory: str | Path, config: str, metadata: dict | None = None,
                    encoder_only: bool = False, dtype: torch.dtype | None = None) -> Path:
    """Write model.safetensors, config.gin, mmmae.json and README.md into `directory`, whole or not at all.

    config: the gin text that rebuilds `model` (e.g. a run's config.gin). metadata: anything to
    record (source, training data, metrics, recipe); the model's modalities and sizes are added.
    dtype: store floating tensors in this dtype (e.g. torch.float16 for zoo files); loading
    casts them back to the model's parameters' dtype.
    """
    directory = Path(directory)
    state = encoder_state(model) if encoder_only else model.state_dict()
    # Clones: safetensors refuses tensors that share storage.
    state = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().clone().contiguous()
             for k, v in state.items()}
    info = {"format": "mmmae", "version": FORMAT_VERSION, "mmmae_version": __version__, **model_metadata(model),
            "encoder_only": encoder_only, "stored_dtype": str(next(iter(state.values())).dtype).removeprefix("torch."),
            **(metadata or {})}
    directory.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".partial", dir=directory.parent))
    partial.chmod(0o755)
    try:
        save_file(state, str(partial / MODEL_FILE), metadata={"format": "pt"})
        (partial / OPERATIVE_CONFIG).write_text(config)
        (partial / METADATA_FILE).write_text(json.dumps(info, indent=2) + "\n")
        (partial / CARD_FILE).write_text(model_card(directory.name, info, config))
        if directory.exists():
            old = directory.with_name(f".{directory.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(directory, old)
            os.replace(partial, directory)
            shutil.rmtree(old)
        else:
            os.replace(partial, directory)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return directory


def _from_directory(directory: Path) -> PretrainedFiles:
    weights, config, meta = directory / MODEL_FILE, directory / OPERATIVE_CONFIG, directory / METADATA_FILE
    if (directory / TRAINER_STATE).is_file():  # a checkpoint of a run (run/checkpoints/step_N): the run's config
        config = directory.parent.parent / OPERATIVE_CONFIG
        if (directory / MODEL_SHARDS).is_dir():  # an FSDP run's shards, consolidated on load (read_weights)
            weights = directory / MODEL_SHARDS
    for path, what in ((weights, "weights"), (config, "gin config")):
        if not path.exists():
            raise FileNotFoundError(
                f"{directory} is not a pretrained model directory: its {what} {path.name} is missing")
    metadata = json.loads(meta.read_text()) if meta.is_file() else {}
    return PretrainedFiles(directory, weights, config, metadata)


def locate(name_or_dir: str | Path) -> PretrainedFiles:
    """The files of a pretrained directory (or run directory), a model-zoo name, or a Hub repo id.

    Zoo weights are checked against their sha256 before use. A Hub repo id ("org/name") is
    fetched by huggingface_hub into its cache (with HF_HUB_OFFLINE=1, read from the cache only).
    """
    path = Path(name_or_dir)
    if path.is_dir():
        return _from_directory(path)
    from mmmae.zoo.registry import Registry

    registry = Registry.load()
    if str(name_or_dir) in registry.models:
        return _from_directory(registry.fetch(str(name_or_dir)))
    if path.parent.is_dir() and str(path.parent) != ".":  # a path into a local folder, not a Hub repo id
        raise FileNotFoundError(f"{name_or_dir!r} is not a directory (its folder {str(path.parent)!r} exists, so it "
                                "is not read as a Hub repo id); give a run directory, a pretrained directory or a "
                                "model-zoo name")
    if re.fullmatch(r"[\w.-]+/[\w.-]+", str(name_or_dir)):
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError

        try:
            return _from_directory(Path(snapshot_download(str(name_or_dir))))
        except (LocalEntryNotFoundError, RepositoryNotFoundError, OSError) as error:
            raise FileNotFoundError(f"{name_or_dir!r} is neither a directory, a model-zoo name "
                                    f"({', '.join(registry.models)}) nor a Hub repo reachable here: "
                                    f"{' '.join(str(error).split())}") from error
    raise FileNotFoundError(f"{name_or_dir!r} is neither a directory nor a model-zoo name "
                            f"(known: {', '.join(registry.models)})")


def build_model(config: str | Path, overrides: Sequence[str] = ()) -> MaskedAutoencoder:
    """`MaskedAutoencoder()` as a gin config builds it: a config.gin path, or gin text, then the
    bindings `overrides` on top. Replaces the global gin config (as `mmmae train` and `mmmae eval` do)."""
    if isinstance(config, Path):
        parse_config([str(config)], overrides)
        return MaskedAutoencoder()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / OPERATIVE_CONFIG
        path.write_text(config)
        parse_config([str(path)], overrides)
        return MaskedAutoencoder()


@contextmanager
def gin_config_kept() -> Iterator[None]:
    """Whatever gin parses and builds inside (a teacher's config.gin, while the student's model is
    being built) leaves the global config as it found it: bindings, operative config, imports,
    singletons, lock, the files mmmae.config says were parsed, and the active scopes (cleared inside)."""
    config = gin.config
    state = [config._CONFIG, config._OPERATIVE_CONFIG, config._IMPORTS, config._SINGLETONS, mmmae_config._parsed]
    saved = [{k: v.copy() if isinstance(v, dict | list) else v for k, v in part.items()} if isinstance(part, dict)
             else set(part) for part in state]
    locked = config.config_is_locked()
    try:
        with gin.config_scope(None):
            yield
    finally:
        for live, kept in zip(state, saved, strict=True):
            live.clear()
            live.update(kept)
        config._set_config_is_locked(locked)


# Frozen models in use, by weights file and its modification time: every holder naming one source shares it.
_FROZEN: "weakref.WeakValueDictionary[tuple[str, int], MaskedAutoencoder]" = weakref.WeakValueDictionary()


def frozen_model(source: str | Path) -> MaskedAutoencoder:
    """The model of `source` (a zoo name, run or pretrained folder, Hub repo id: `locate`) with its
    weights, in eval mode with requires_grad False (a teacher, a segment encoder), built from its own
    config.gin while the caller's gin config is kept (`gin_config_kept`) and the global RNG untouched;
    one model per weights file while anything holds it."""
    files = locate(source)
    key = (str(files.weights.resolve()), files.weights.stat().st_mtime_ns)
    model = _FROZEN.get(key)
    if model is None:
        with gin_config_kept(), torch.random.fork_rng(devices=[]):
            model = build_model(files.config)
        load_weights(model, files.weights, encoder_only=files.metadata.get("encoder_only", False))
        model = _FROZEN[key] = model.eval().requires_grad_(False)
    return model


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors state dict, or a sharded checkpoint's (a DCP folder) consolidated; a ValueError naming
    the file when it is truncated or not safetensors."""
    if path.is_dir():
        return consolidated_state(path)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise ValueError(f"cannot read weights {path}: {error} (truncated or not a safetensors file?)") from error


def load_weights(model: torch.nn.Module, path: Path, encoder_only: bool = False) -> None:
    """Load safetensors `path` into `model`, cast to its dtypes; every key must match, except the
    pretraining-only ones an encoder-only file leaves out. A mismatch lists the keys (and shapes)."""
    state = read_weights(path)
    own = model.state_dict()
    reshaped = {k: (tuple(v.shape), tuple(own[k].shape)) for k, v in state.items()
                if k in own and v.shape != own[k].shape}
    if reshaped:
        shapes = ", ".join(f"{k} {stored} in the file, {built} in the model"
                           for k, (stored, built) in sorted(reshaped.items()))
        raise ValueError(f"{path} does not match the model its config builds: {shapes}; a binding that changes a "
                         f"weight's shape cannot be overridden on pretrained weights{_imu_hint(reshaped)}")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if encoder_only:
        missing = [k for k in missing if not PRETRAINING_ONLY.search(k)]
    if missing or unexpected:
        raise ValueError(f"{path} does not match the model its config builds: missing keys {sorted(missing)}, "
                         f"unexpected keys {sorted(unexpected)}{_imu_hint([*missing, *unexpected])}")


def _imu_hint(keys) -> str:
    """For keys of the IMU tokenizer: how to read logs whose devices or rates differ from the model's."""
    if not any(k.startswith("modalities.imu.tokenizer.") for k in keys):
        return ""
    return ("; the IMU tokenizer's devices and rates are part of its weights: keep them, and read logs whose devices "
            "are named otherwise or run at other rates with MediaDataset.imu_devices = {model device: log device} "
            "(docs/data.md, IMU)")


def from_pretrained(name_or_dir: str | Path, overrides: Sequence[str] = ()) -> MaskedAutoencoder:
    """The model of a pretrained directory, run directory, zoo name or Hub repo id, in eval mode
    (see `locate`). An encoder-only export leaves the decoders at their initialisation.

    overrides: gin bindings applied on top of its config.gin, for settings that change no weight,
    e.g. ["audio/AudioTokenizer.target_length = 192"] for 2 s clips of a model trained on 1 s."""
    files = locate(name_or_dir)
    model = build_model(files.config, overrides)
    load_weights(model, files.weights, encoder_only=files.metadata.get("encoder_only", False))
    return model.eval()


def push_to_hub(directory: str | Path, repo_id: str, private: bool = False, token: str | None = None) -> str:
    """Upload a pretrained directory to the Hugging Face Hub (created if absent); returns the commit URL."""
    from huggingface_hub import HfApi

    files = _from_directory(Path(directory))
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    return str(api.upload_folder(folder_path=str(files.directory), repo_id=repo_id))
