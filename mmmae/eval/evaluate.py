"""Evaluate a finished run: rebuild its model from config.gin, load its weights, probe."""

from collections.abc import Sequence
from pathlib import Path

import gin
from accelerate.utils import set_seed
from safetensors.torch import load_model

from mmmae.config import OPERATIVE_CONFIG, parse_config
from mmmae.eval.linear_probe import LinearProbe
from mmmae.model import MaskedAutoencoder
from mmmae.train import MODEL_FILE


def evaluate_run(run_dir: Path, gin_files: Sequence[str] = (), gin_params: Sequence[str] = (),
                 random_init: bool = False) -> dict:
    """Linear-probe accuracies of the run's encoder (and of a fresh one with `random_init`).

    The run's config.gin rebuilds the model and the probe; extra gin files and bindings
    (e.g. another probe dataset) apply on top.
    """
    weights = run_dir / MODEL_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} does not exist: is {run_dir} a finished `mmmae train` run?")
    parse_config([str(run_dir / OPERATIVE_CONFIG), *gin_files], gin_params)
    probe = LinearProbe()
    model = MaskedAutoencoder()
    load_model(model, str(weights))
    summary = {"run_dir": str(run_dir), "probe": {"pretrained": probe(model)}}
    if random_init:
        set_seed(gin.query_parameter("pretrain.seed"))
        summary["probe"]["random_init"] = probe(MaskedAutoencoder())
    return summary
