"""Linear probe: logistic regression on frozen, mean-pooled encoder features."""

import gin
import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch.utils.data import DataLoader, Dataset


@torch.no_grad()
def extract_features(model, dataset: Dataset, modality: str, label: str, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Features (num_samples, D) and labels (num_samples,) of a dataset, in dataset order."""
    model.eval()
    device = next(model.parameters()).device
    features, labels = [], []
    for batch in DataLoader(dataset, batch_size=batch_size):
        inputs = {modality: batch[modality].to(device)}
        features.append(model.features(inputs, modality).float().cpu())
        labels.append(batch[label])
    return torch.cat(features).numpy(), torch.cat(labels).numpy()


@gin.configurable(module="mmmae")
class LinearProbe:
    """Fit on `train_data`, report accuracy on `train_data` and `test_data` (fractions in [0, 1])."""

    def __init__(self, train_data: Dataset = gin.REQUIRED, test_data: Dataset = gin.REQUIRED, modality: str = "video",
                 label: str = "label", batch_size: int = 64, max_iter: int = 2000):
        self.train_data, self.test_data = train_data, test_data
        self.modality, self.label = modality, label
        self.batch_size, self.max_iter = batch_size, max_iter

    def __call__(self, model) -> dict[str, float]:
        train_x, train_y = extract_features(model, self.train_data, self.modality, self.label, self.batch_size)
        test_x, test_y = extract_features(model, self.test_data, self.modality, self.label, self.batch_size)
        classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=self.max_iter))
        classifier.fit(train_x, train_y)
        return {"train_accuracy": float(classifier.score(train_x, train_y)),
                "test_accuracy": float(classifier.score(test_x, test_y))}
