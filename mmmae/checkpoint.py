"""Checkpoints that are written whole or not at all, and the pointer to the latest one.

A checkpoint is Accelerate's `save_state` folder (model as safetensors; optimizer, sampler and RNG
states as tensors and plain containers that Accelerate reads back with `weights_only=True`) plus
`trainer_state.json` (the step and the learning-rate schedule, as JSON). Nothing mmmae resumes from is
unpickled into objects: Accelerate's custom-state files (`custom_checkpoint_*.pkl`, which it
unpickles without restriction, i.e. able to run code) are never written nor read. It is written
under `<name>.partial` and renamed into place only when complete; `checkpoints/latest`
names the newest complete one and is replaced atomically. A crash or kill while writing
leaves the previous checkpoint and pointer untouched.
"""

import errno
import json
import os
import pickle
import shutil
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import load
from torch.distributed.checkpoint.api import CheckpointException
from torch.optim.lr_scheduler import LRScheduler

from mmmae.sharded_checkpoint import (
    dcp_failure,
    is_sharded,
    is_sharded_checkpoint,
    load_sharded_state,
    save_sharded_state,
)

TRAINER_STATE = "trainer_state.json"

MODEL_FILE = "model.safetensors"  # the final weights of a run, next to its config.gin


def checkpoints_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint of a run, or None; CheckpointLoadError when `latest` names a
    folder that is not one (removed by hand, or copied without it)."""
    pointer = checkpoints_dir(run_dir) / "latest"
    if not pointer.is_file():
        return None
    path = checkpoints_dir(run_dir) / pointer.read_text().strip()
    if not (path / TRAINER_STATE).is_file():
        complete = sorted(p.name for p in checkpoints_dir(run_dir).glob("step_*") if (p / TRAINER_STATE).is_file())
        raise CheckpointLoadError(f"{pointer} names {path}, which is not a complete checkpoint: write the name of a "
                                  f"complete one into it ({', '.join(complete) or 'there is none'}), or remove "
                                  f"{checkpoints_dir(run_dir)} to start the run over")
    return path


def checkpoint_step(path: Path | None) -> int:
    """The step a checkpoint was saved at (0 for None: no checkpoint)."""
    return 0 if path is None else json.loads((path / TRAINER_STATE).read_text())["step"]


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class CheckpointWriteError(RuntimeError):
    """A checkpoint could not be written (full disk, read-only folder); the partial one is removed."""


class CheckpointLoadError(ValueError):
    """A checkpoint this run cannot resume from (written without FSDP for a sharded run, or the reverse;
    unreadable shards; objects mmmae will not unpickle)."""


def checkpoint_bytes(model: torch.nn.Module, root: Path) -> int:
    """The size of one checkpoint: the newest complete one's files, or else the model's parameters
    three times over (weights and AdamW's two moments)."""
    complete = sorted(p for p in root.glob("step_*") if p.suffix != ".partial")
    if complete:
        return sum(f.stat().st_size for f in complete[-1].rglob("*") if f.is_file())
    return 3 * sum(p.numel() * p.element_size() for p in model.parameters())


def write_failure(partial: Path, error: BaseException, needed: int) -> str:
    """The reason a checkpoint write failed, in words: no space (and how much is needed), read-only, other."""
    folder = partial.parent
    free = shutil.disk_usage(folder).free if folder.exists() else 0
    detail = str(error).splitlines()[0] if str(error) else type(error).__name__
    if getattr(error, "errno", None) == errno.ENOSPC or free < needed or "unexpected pos" in detail:
        return (f"no space left on {folder} to write checkpoint {partial.stem}: it needs about "
                f"{needed / 2**20:.0f} MB, {free / 2**20:.0f} MB are free. The partial checkpoint was removed and "
                "the previous one is intact: free space (or lower pretrain.keep_checkpoints), then resume with "
                "--resume")
    if getattr(error, "errno", None) in (errno.EACCES, errno.EROFS, errno.EPERM):
        return (f"cannot write checkpoint {partial.stem} into {folder}: {error.strerror.lower()}. The previous "
                "checkpoint is intact: make the folder writable, then resume with --resume")
    return f"could not write checkpoint {partial.stem} into {folder}: {detail}. The previous checkpoint is intact"


def save_checkpoint(accelerator: Accelerator, model: torch.nn.Module, run_dir: Path, step: int, schedule: LRScheduler,
                    keep: int = 2, optimizer: torch.optim.Optimizer | None = None) -> Path:
    """Save model, optimizer, schedule and RNG states at `step`; keep the newest `keep`. A sharded
    (FSDP) model and its `optimizer` are saved in shards (mmmae/sharded_checkpoint.py). The disk
    holds keep + 1 checkpoints at the peak (the new one is complete before the oldest is removed).
    A failed write removes its partial folder and raises CheckpointWriteError."""
    root = checkpoints_dir(run_dir)
    final = root / f"step_{step:08d}"
    partial = root / f"{final.name}.partial"
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(partial, ignore_errors=True)
    accelerator.wait_for_everyone()
    try:
        if is_sharded(model):
            save_sharded_state(accelerator, model, optimizer, partial)
        else:
            accelerator.save_state(str(partial))
        if accelerator.is_main_process:
            (partial / TRAINER_STATE).write_text(json.dumps({"step": step, "schedule": schedule.state_dict()}))
    except (OSError, RuntimeError, CheckpointException) as error:  # torch: a full disk is "unexpected pos"
        shutil.rmtree(partial, ignore_errors=True)  # DCP wraps each rank's I/O error in a CheckpointException
        failure = dcp_failure(error) if isinstance(error, CheckpointException) else error
        raise CheckpointWriteError(write_failure(partial, failure, checkpoint_bytes(model, root))) from None
    if accelerator.is_main_process:
        shutil.rmtree(final, ignore_errors=True)
        os.replace(partial, final)
        _write_atomic(root / "latest", final.name)
        complete = sorted(p for p in root.glob("step_*") if p.suffix != ".partial")
        for old in complete[:-keep]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator: Accelerator, path: Path, schedule: LRScheduler, model: torch.nn.Module | None = None,
                    optimizer: torch.optim.Optimizer | None = None) -> int:
    """Restore model, optimizer, schedule and RNG states from `path`; returns the step it was saved at.
    A sharded checkpoint restores into the sharded `model` and `optimizer` (the same processes and FSDP config).
    A checkpoint this run cannot resume from is a CheckpointLoadError saying why."""
    state = json.loads((Path(path) / TRAINER_STATE).read_text())
    if "schedule" not in state:
        raise CheckpointLoadError(f"{path} was written by an mmmae before 0.2, which kept the learning-rate schedule "
                                  "in a pickle; mmmae no longer unpickles checkpoints (unpickling can run code). Start "
                                  "the run anew, or from its weights (model.safetensors in that folder)")
    planted = sorted(p.name for p in Path(path).glob("custom_checkpoint_*"))
    if planted:
        raise CheckpointLoadError(f"{path} holds {', '.join(planted)}, which mmmae never writes and will not load "
                                  "(Accelerate unpickles such files without restriction, which can run code). Delete "
                                  "them if the folder is yours, then resume")
    if is_sharded_checkpoint(path) != (model is not None and is_sharded(model)):
        raise CheckpointLoadError(f"{path} was written by a run {'with' if is_sharded_checkpoint(path) else 'without'}"
                                  " FSDP (sharded weights); resume it with the accelerate config it was launched with")
    try:
        for rng_file in Path(path).glob("random_states_*.pkl"):  # Accelerate skips an unreadable one silently
            load(rng_file)
        if is_sharded_checkpoint(path):
            load_sharded_state(accelerator, model, optimizer, path)
        else:
            accelerator.load_state(str(path))
    except ValueError as error:  # load_sharded_state: shards that cannot be read
        raise CheckpointLoadError(str(error)) from None
    except pickle.UnpicklingError as error:
        raise CheckpointLoadError(f"{path} holds a state file with objects other than tensors and plain containers, "
                                  "which mmmae refuses to load (unpickling them can run code): "
                                  f"{str(error).splitlines()[0]} Resume only from checkpoints you wrote, or start "
                                  "anew from its model.safetensors") from None
    schedule.load_state_dict(state["schedule"])
    return state["step"]
