"""Before training: each evaluation's label is a per-sample class id of its data, or one message
naming the binding (a bad label would otherwise surface only after the whole run)."""

import random
import re
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset

from mmmae.config import binding_error
from mmmae.eval.attentive_probe import AttentiveProbe
from mmmae.eval.few_shot import FewShot
from mmmae.eval.finetune import FineTune
from mmmae.eval.forgery import LateFusionDetection
from mmmae.eval.knn import KNN
from mmmae.eval.linear_probe import LinearProbe

# The evaluations whose `label` is a per-sample class id, and the datasets they read it from.
LABELLED = {LinearProbe: ("train_data", "test_data"), KNN: ("train_data", "test_data"),
            AttentiveProbe: ("train_data", "test_data"), FineTune: ("train_data", "test_data"),
            LateFusionDetection: ("train_data", "test_data"), FewShot: ("data",)}


def first_sample(dataset: Dataset) -> dict | None:
    """The dataset's first sample, drawn with every RNG (torch, numpy, Python) left as it was; None
    when it cannot be read (the evaluation itself reports unreadable samples)."""
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        with torch.random.fork_rng():
            return next(iter(dataset)) if isinstance(dataset, IterableDataset) else dataset[0]
    except Exception:  # noqa: BLE001 - an unreadable first sample is the evaluation's to report, with its file
        return None
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)


def is_scalar(value) -> bool:
    return isinstance(value, int) or (isinstance(value, torch.Tensor) and value.ndim == 0)


def label_problem(sample: dict, label: str) -> str | None:
    """What keeps sample[label] from being a class id (a whole number per sample), or None."""
    if label not in sample:
        return f"carry no such per-sample label (they carry {sorted(k for k, v in sample.items() if is_scalar(v))})"
    value = sample[label]
    if isinstance(value, int) or (is_scalar(value) and not (value.dtype.is_floating_point or value.dtype.is_complex)):
        return None
    kind = value.dtype if is_scalar(value) else type(value).__name__
    return f"carry it as {kind}, not class ids (MovingDigits: 'speed_class' is speed in classes)"


def check_labels(tasks: Sequence) -> None:
    """ConfigError for the first labelled evaluation (LABELLED: linear probe, kNN, attentive probe,
    fine-tuning, forgery detection, few-shot episodes) whose data's first sample does not carry its
    `label` as a class id; at the binding `scope/Kind.label = 'value'` when the config set it."""
    for task in tasks:
        splits = next((splits for kind, splits in LABELLED.items() if isinstance(task, kind)), ())
        kind = type(task).__name__
        for split in splits:
            sample = first_sample(getattr(task, split))
            if sample is not None and (problem := label_problem(sample, task.label)):
                raise binding_error(f"{kind}.label = {task.label!r}: the samples of {kind}.{split} {problem}",
                                    rf"([\w/]+/)?{kind}\.label\s*=\s*['\"]{re.escape(task.label)}['\"]")
