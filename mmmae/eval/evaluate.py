"""Evaluate an encoder: the configured probes and retrievals, on the trained model and on a fresh one.

`evaluations` (gin) lists them, `run_evaluations` runs them, `evaluate_run` does both for a
finished run directory. Every evaluation is a callable `(model) -> result dict` with a `kind`.
"""

import copy
from collections.abc import Callable, Sequence
from pathlib import Path

import gin
import torch
from accelerate.utils import set_seed
from safetensors.torch import load_model

from mmmae.checkpoint import MODEL_FILE
from mmmae.config import OPERATIVE_CONFIG, ConfigError, parse_config
from mmmae.eval.linear_probe import LinearProbe
from mmmae.eval.retrieval import Retrieval
from mmmae.model import MaskedAutoencoder


@gin.configurable(module="mmmae")
def evaluations(probes: Sequence[LinearProbe] = (), retrievals: Sequence[Retrieval] = ()) -> list:
    """The evaluations a config lists, e.g. `evaluations.probes = [@imu/LinearProbe()]` with
    `imu/LinearProbe.modality = 'imu'`, and `evaluations.retrievals = [@Retrieval()]`.
    `pretrain` runs them at the end of training; `mmmae eval` on a finished run."""
    return [*probes, *retrievals]


def run_evaluations(model: torch.nn.Module, tasks: Sequence[Callable[[torch.nn.Module], dict]],
                    fresh: torch.nn.Module | None = None) -> list[dict]:
    """Run every task on `model` and, given `fresh` (the same architecture untrained, moved to
    `model`'s device), on it too, for comparison.

    Returns one entry per task: {"kind": task.kind, "pretrained": result, "random_init": result}.
    """
    if fresh is not None:
        fresh = fresh.to(next(model.parameters()).device)
    entries = []
    for task in tasks:
        entry = {"kind": task.kind, "pretrained": task(model)}
        if fresh is not None:
            entry["random_init"] = task(fresh)
        entries.append(entry)
    return entries


def evaluate_run(run_dir: Path, gin_files: Sequence[str] = (), gin_params: Sequence[str] = (),
                 random_init: bool = False) -> dict:
    """The run's evaluations on its encoder (and on a fresh one seeded with `pretrain.seed`, with `random_init`).

    The run's config.gin rebuilds the model and the evaluations (the `evaluations`
    bindings); extra gin files and bindings (another dataset, more evaluations)
    apply on top. Runs on the GPU when there is one.
    """
    weights = run_dir / MODEL_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} does not exist: is {run_dir} a finished `mmmae train` run?")
    parse_config([str(run_dir / OPERATIVE_CONFIG), *gin_files], gin_params)
    tasks = evaluations()
    if not tasks:
        raise ConfigError(f"{run_dir / OPERATIVE_CONFIG} (with the given files and bindings) configures no evaluation: "
                          "bind evaluations.probes or evaluations.retrievals, e.g. "
                          "--gin_param 'evaluations.probes = [@LinearProbe()]'")
    set_seed(gin.query_parameter("pretrain.seed"))
    fresh = MaskedAutoencoder()  # the run's initialisation; copied, as gin singletons would be shared
    model = copy.deepcopy(fresh)
    load_model(model, str(weights))
    model.to("cuda" if torch.cuda.is_available() else "cpu")
    return {"run_dir": str(run_dir), "evaluations": run_evaluations(model, tasks, fresh if random_init else None)}
