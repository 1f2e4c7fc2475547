"""Checkpoints that are written whole or not at all, and the pointer to the latest one.

A checkpoint is Accelerate's `save_state` folder plus `trainer_state.json`. It is written
under `<name>.partial` and renamed into place only when complete; `checkpoints/latest`
names the newest complete one and is replaced atomically. A crash or kill while writing
leaves the previous checkpoint and pointer untouched.
"""

import json
import os
import shutil
from pathlib import Path

from accelerate import Accelerator

TRAINER_STATE = "trainer_state.json"

MODEL_FILE = "model.safetensors"  # the final weights of a run, next to its config.gin


def checkpoints_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    pointer = checkpoints_dir(run_dir) / "latest"
    if not pointer.is_file():
        return None
    path = checkpoints_dir(run_dir) / pointer.read_text().strip()
    if not (path / TRAINER_STATE).is_file():
        raise FileNotFoundError(f"{pointer} names {path}, which is not a complete checkpoint")
    return path


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_checkpoint(accelerator: Accelerator, run_dir: Path, step: int, keep: int = 2) -> Path:
    """Save model, optimizer, scheduler and RNG states at `step`; keep the newest `keep`."""
    root = checkpoints_dir(run_dir)
    final = root / f"step_{step:08d}"
    partial = root / f"{final.name}.partial"
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(partial, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))
    if accelerator.is_main_process:
        (partial / TRAINER_STATE).write_text(json.dumps({"step": step}))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(partial, final)
        _write_atomic(root / "latest", final.name)
        complete = sorted(p for p in root.glob("step_*") if p.suffix != ".partial")
        for old in complete[:-keep]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator: Accelerator, path: Path) -> int:
    """Restore every registered state from `path`; returns the step it was saved at."""
    accelerator.load_state(str(path))
    return json.loads((Path(path) / TRAINER_STATE).read_text())["step"]
