"""Pooled features of a frozen encoder for a dataset, extracted once per evaluation run.

A linear probe and a kNN of the same modality on the same data, or probes of several labels,
need the same features. Inside `shared_features()` (`run_evaluations` opens it), the features
of one (model, dataset, modality, batch size) are extracted on first use and reused; the
model and the dataset are matched by identity, so evaluations share an extraction when they
hold the same dataset object (gin: `@probe_train/singleton()`, see gin/eval/modality_probes.gin).
Outside it, every call extracts.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from mmmae.eval.encoded import encoded_batches
from mmmae.eval.loader import EvalLoader, no_samples_error


@dataclass
class PooledFeatures:
    """features (n, D) float32 of the n readable samples that have the modality, in dataset order;
    scalars {name: (n,)}: every per-sample scalar of the samples (label, direction, speed_class, ...);
    absent: samples left out for lacking the modality; left_out: unreadable samples left out."""

    features: np.ndarray
    scalars: dict[str, np.ndarray]
    absent: int
    left_out: int


@dataclass
class LabelledFeatures:
    """x (n, D) float32 features and y (n,) int64 class ids of one split, with its counts."""

    x: np.ndarray
    y: np.ndarray
    absent: int
    left_out: int


_SHARED: ContextVar[dict | None] = ContextVar("shared_features", default=None)


@contextmanager
def shared_features() -> Iterator[None]:
    """Inside, `pooled_features` extracts each (model, dataset, modality, batch size) once."""
    token = _SHARED.set({})
    try:
        yield
    finally:
        _SHARED.reset(token)


def _extract(model, dataset: Dataset, modality: str, batch_size: int) -> PooledFeatures:
    features, scalars, absent = [], {}, 0
    loader = EvalLoader(dataset, batch_size)
    for encoded in encoded_batches(model, loader, modality):
        absent += int((~encoded.present).sum())
        if encoded.features is None:
            continue
        features.append(encoded.features)
        for name, value in encoded.batch.items():
            if isinstance(value, torch.Tensor) and value.ndim == 1 and not name.endswith("_present"):
                scalars.setdefault(name, []).append(value[encoded.present])
    if not features:
        return PooledFeatures(np.zeros((0, 0), np.float32), {}, absent, loader.left_out)
    return PooledFeatures(torch.cat(features).numpy(), {name: torch.cat(parts).numpy() for name, parts in
                                                        scalars.items() if len(parts) == len(features)},
                          absent, loader.left_out)


def pooled_features(model, dataset: Dataset, modality: str, batch_size: int) -> PooledFeatures:
    """`modality` encoded alone, unmasked and frozen, mean-pooled over its valid tokens (Encoder.pool),
    for every readable sample of `dataset` that has it; from the cache inside `shared_features()`."""
    cache = _SHARED.get()
    key = (id(model), id(dataset), modality, batch_size)
    if cache is not None and key in cache:
        return cache[key][0]
    result = _extract(model, dataset, modality, batch_size)
    if cache is not None:
        cache[key] = (result, model, dataset)  # held, so no other object takes their ids while the cache lives
    return result


def labelled_features(owner: str, model, dataset: Dataset, modality: str, label: str,
                      batch_size: int) -> LabelledFeatures:
    """Pooled features and class ids `label` of one split; `owner` (e.g. "KNN.test_data") names it
    in the error when no sample has the modality or the samples carry no integer `label`."""
    pooled = pooled_features(model, dataset, modality, batch_size)
    if len(pooled.features) == 0:
        raise no_samples_error(owner, modality, pooled.absent, pooled.left_out)
    evaluation = owner.split(".")[0]
    if label not in pooled.scalars:
        raise ValueError(f"{evaluation}.label = {label!r}: the samples of {owner} carry no such per-sample label "
                         f"(they carry {sorted(pooled.scalars)})")
    labels = pooled.scalars[label]
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == np.bool_):
        raise ValueError(f"{evaluation}.label = {label!r}: the samples of {owner} carry it as {labels.dtype}, not "
                         "class ids (MovingDigits: 'speed_class' is speed in classes)")
    return LabelledFeatures(pooled.features, labels.astype(np.int64), pooled.absent, pooled.left_out)


def split_counts(train: LabelledFeatures, test: LabelledFeatures) -> dict[str, int]:
    """The sample counts a probe reports: train/test samples, absent (lacking the modality), left out (unreadable)."""
    return {"train_samples": len(train.x), "test_samples": len(test.x), "train_absent": train.absent,
            "test_absent": test.absent, "train_left_out": train.left_out, "test_left_out": test.left_out}


def chance_accuracy(test: LabelledFeatures) -> float:
    """Chance: the share of the test split's most frequent class, the best a constant answer scores."""
    return float(np.bincount(test.y).max() / len(test.y))
