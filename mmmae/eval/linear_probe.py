"""Linear probe: logistic regression on frozen, pooled encoder features of one modality.

Also the helpers every evaluation shares: the model frozen on its device, and which samples
have a modality (batch[f"{m}_present"]; those that lack it are dropped). The data come in
order through mmmae.eval.loader.EvalLoader (unreadable samples left out and counted).
"""

from collections.abc import Iterator
from contextlib import contextmanager

import gin
import numpy as np
import torch
from accelerate.utils import find_batch_size, send_to_device
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch.utils.data import Dataset

from mmmae.eval.loader import EvalLoader, no_samples_error


@contextmanager
def frozen(model: torch.nn.Module) -> Iterator[torch.device]:
    """Eval mode and no gradients inside; the model's train/eval mode is restored after. Yields its device."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield next(model.parameters()).device
    finally:
        model.train(was_training)


def check_modality(model, modality: str, owner: str) -> None:
    """A clear error, naming the evaluation `owner`, when the model does not have `modality`."""
    if modality not in model.modalities:
        raise ValueError(f"{owner}: the model has no modality {modality!r} (it has {list(model.modalities)})")


def present_rows(batch: dict, modality: str) -> torch.Tensor:
    """(B,) bool on the CPU: which samples of a collated batch have `modality` (all without a flag)."""
    if modality not in batch:
        raise KeyError(f"modality {modality!r} is not in the data's samples (keys: {sorted(batch)})")
    flag = batch.get(f"{modality}_present")
    if flag is None:
        return torch.ones(find_batch_size(batch[modality]), dtype=torch.bool)
    return flag.to("cpu", torch.bool)


def extract_features(model, dataset: Dataset, modality: str, label: str,
                     batch_size: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Pooled features (n, D) and labels (n,) of the n readable samples that have `modality`, in
    dataset order, each once; the number left out because they lack it, and because they were
    unreadable."""
    features, labels, absent = [], [], 0
    loader = EvalLoader(dataset, batch_size)
    with frozen(model) as device:
        for _, batch in loader:
            present = present_rows(batch, modality)
            absent += int((~present).sum())
            if not present.any():
                continue
            inputs = {modality: send_to_device(batch[modality], device)}
            features.append(model.features(inputs, modality).float().cpu()[present])
            labels.append(batch[label][present])
    if not features:
        return np.zeros((0, 0), np.float32), np.zeros(0, np.int64), absent, loader.left_out
    return torch.cat(features).numpy(), torch.cat(labels).numpy(), absent, loader.left_out


@gin.configurable(module="mmmae")
class LinearProbe:
    """Fit on `train_data`, report accuracy on `train_data` and `test_data` (fractions in [0, 1]).

    Features: the `modality` encoded alone and unmasked, mean-pooled over its valid tokens (text
    padding excluded). Samples that lack the modality, and unreadable ones, are left out and counted.
    Result: {"modality", "label", "train_accuracy", "test_accuracy", "train_samples",
    "test_samples", "train_absent", "test_absent", "train_left_out", "test_left_out"} (left_out:
    unreadable).
    """

    kind = "linear_probe"

    def __init__(self, train_data: Dataset = gin.REQUIRED, test_data: Dataset = gin.REQUIRED, modality: str = "video",
                 label: str = "label", batch_size: int = 64, max_iter: int = 2000):
        self.train_data, self.test_data = train_data, test_data
        self.modality, self.label = modality, label
        self.batch_size, self.max_iter = batch_size, max_iter

    def __call__(self, model) -> dict:
        check_modality(model, self.modality, "LinearProbe")
        splits = {}
        for split, data in (("train_data", self.train_data), ("test_data", self.test_data)):
            splits[split] = extract_features(model, data, self.modality, self.label, self.batch_size)
            if len(splits[split][0]) == 0:
                raise no_samples_error(f"LinearProbe.{split}", self.modality, *splits[split][2:])
        (train_x, train_y, train_absent, train_left_out), (test_x, test_y, test_absent, test_left_out) = \
            splits.values()
        classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=self.max_iter))
        classifier.fit(train_x, train_y)
        return {"modality": self.modality, "label": self.label,
                "train_accuracy": float(classifier.score(train_x, train_y)),
                "test_accuracy": float(classifier.score(test_x, test_y)),
                "train_samples": len(train_x), "test_samples": len(test_x),
                "train_absent": train_absent, "test_absent": test_absent,
                "train_left_out": train_left_out, "test_left_out": test_left_out}
