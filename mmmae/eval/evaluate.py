"""Evaluate an encoder: the configured probes, kNN, fine-tunings and retrievals, on the trained
model and on a fresh one.

`evaluations` (gin) lists them, `run_evaluations` runs them, `evaluate_run` does both for a
run directory, a pretrained directory or a model-zoo name. Every evaluation is a callable
`(model) -> result dict` with a `kind`. The fresh model (`random_init`) is the run's own
initialisation (`initial_model`), in training summaries and in `mmmae eval --random_init` alike.
"""

import copy
from collections.abc import Callable, Sequence
from pathlib import Path

import gin
import torch
from accelerate.utils import set_seed
from tqdm.auto import tqdm

from mmmae.config import ConfigError, parse_config
from mmmae.eval.attentive_probe import AttentiveProbe
from mmmae.eval.features import shared_features
from mmmae.eval.few_shot import FewShot
from mmmae.eval.finetune import FineTune
from mmmae.eval.forgery import LateFusionDetection
from mmmae.eval.knn import KNN
from mmmae.eval.linear_probe import LinearProbe
from mmmae.eval.retrieval import Retrieval
from mmmae.eval.segmentation import TemporalSegmentation
from mmmae.model import MaskedAutoencoder
from mmmae.zoo.pretrained import PretrainedFiles, load_weights, locate

BINDINGS = "evaluations.probes, evaluations.attentive_probes, evaluations.knn, evaluations.finetunes, " \
           "evaluations.retrievals, evaluations.forgery, evaluations.few_shot or evaluations.segmentations"


@gin.configurable(module="mmmae")
def evaluations(probes: Sequence[LinearProbe] = (), retrievals: Sequence[Retrieval] = (),
                attentive_probes: Sequence[AttentiveProbe] = (), knn: Sequence[KNN] = (),
                finetunes: Sequence[FineTune] = (), forgery: Sequence[LateFusionDetection] = (),
                few_shot: Sequence[FewShot] = (), segmentations: Sequence[TemporalSegmentation] = ()) -> list:
    """The evaluations a config lists, in this order: probes, attentive_probes, knn, finetunes,
    retrievals, forgery, few_shot, segmentations; e.g. `evaluations.probes = [@imu/LinearProbe()]` with
    `imu/LinearProbe.modality = 'imu'`, `evaluations.knn = [@KNN()]`, `evaluations.retrievals =
    [@Retrieval()]`, `evaluations.forgery = [@LateFusionDetection()]`, `evaluations.few_shot =
    [@FewShot()]`, `evaluations.segmentations = [@TemporalSegmentation()]` (gin/eval/ has one file
    per kind). `pretrain` runs them at the end of training; `mmmae eval` on a finished run or
    pretrained model."""
    return [*probes, *attentive_probes, *knn, *finetunes, *retrievals, *forgery, *few_shot, *segmentations]


def run_evaluations(model: torch.nn.Module, tasks: Sequence[Callable[[torch.nn.Module], dict]],
                    fresh: torch.nn.Module | None = None) -> list[dict]:
    """Run every task on `model` and, given `fresh` (the same architecture untrained, moved to
    `model`'s device), on it too, for comparison.

    Returns one entry per task: {"kind": task.kind, "pretrained": result, "random_init": result}.
    """
    if fresh is not None:
        fresh = fresh.to(next(model.parameters()).device)
    entries = []
    with shared_features():  # a probe and a kNN of the same model, data and modality extract once
        for task in tqdm(tasks, desc="evaluations", unit="evaluation", leave=False):
            entry = {"kind": task.kind, "pretrained": task(model)}
            if fresh is not None:
                entry["random_init"] = task(fresh)
            entries.append(entry)
    return entries


def initial_model(build: Callable[[], MaskedAutoencoder], seed: int) -> MaskedAutoencoder:
    """The model a run starts from: `build()` (the `pretrain.model` binding) right after seeding
    Python's, numpy's and torch's RNGs with `seed` (`pretrain.seed`), before any step.

    `random_init` is this model, parameters and buffers (running statistics) alike: `pretrain`
    trains it and evaluates a copy taken before its first step; `load_source` rebuilds it from
    the run's config.gin. Both call this function, so the two agree exactly.
    """
    set_seed(seed)
    return build()


def configured_initial_model() -> MaskedAutoencoder:
    """`initial_model` with `pretrain.model` and `pretrain.seed` as the parsed config binds them
    (`MaskedAutoencoder` and 0 where it leaves them unbound)."""
    try:
        build = gin.query_parameter("pretrain.model").scoped_configurable_fn
    except ValueError:
        build = MaskedAutoencoder
    try:
        seed = gin.query_parameter("pretrain.seed")
    except ValueError:
        seed = 0
    return initial_model(build, seed)


def load_source(source: str | Path, gin_files: Sequence[str] = (),
                gin_params: Sequence[str] = ()) -> tuple[PretrainedFiles, MaskedAutoencoder, MaskedAutoencoder]:
    """The files of `source` (a run directory, pretrained directory or zoo name: `locate`), its model
    with the weights loaded, and the model at its initialisation (`configured_initial_model`),
    both on the CPU.

    The loaded model starts as a copy of the initial one (a rebuilt one would share gin
    singletons), so what the weights file lacks stays at the initialisation: an encoder-only
    export's decoders and objectives (projection heads, the standardisers' running statistics).
    Parses the source's config.gin, then `gin_files` and `gin_params` on top (another dataset,
    evaluations), so the global gin config is the combined one after.
    """
    files = locate(source)
    parse_config([str(files.config), *gin_files], gin_params)
    fresh = configured_initial_model()
    model = copy.deepcopy(fresh)
    load_weights(model, files.weights, encoder_only=files.metadata.get("encoder_only", False))
    return files, model, fresh


def evaluate_run(source: str | Path, gin_files: Sequence[str] = (), gin_params: Sequence[str] = (),
                 random_init: bool = False) -> dict:
    """The evaluations configured for `source` (a run directory, pretrained directory or zoo name)
    on its encoder (and, with `random_init`, on the model at its initialisation: `initial_model`,
    the same as the run's summary evaluated).

    The source's config.gin rebuilds the model and the evaluations (the `evaluations`
    bindings); extra gin files (e.g. eval/knn.gin) and bindings apply on top. Runs on the GPU
    when there is one. Returns {"run_dir": the model's directory, "source": source, "evaluations": [...]}.
    """
    files, model, fresh = load_source(source, gin_files, gin_params)
    tasks = evaluations()
    if not tasks:
        raise ConfigError(f"{files.config} (with the given files and bindings) configures no evaluation: bind "
                          f"{BINDINGS}, e.g. --gin_param 'evaluations.probes = [@LinearProbe()]' or "
                          "--gin_file eval/knn.gin")
    model.to("cuda" if torch.cuda.is_available() else "cpu")
    return {"run_dir": str(files.directory), "source": str(source),
            "evaluations": run_evaluations(model, tasks, fresh if random_init else None)}
