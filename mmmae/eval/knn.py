"""k-nearest-neighbour classification on frozen, pooled, L2-normalised features (DINO's weighted kNN)."""

import gin
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from mmmae.eval.features import chance_accuracy, labelled_features, split_counts
from mmmae.eval.frozen import check_modality
from mmmae.eval.interval import wilson_interval

QUERY_CHUNK = 1024  # test samples scored at a time: the similarity matrix is never held whole


def knn_predict(train: torch.Tensor, train_labels: torch.Tensor, test: torch.Tensor, k: int,
                temperature: float, num_classes: int) -> torch.Tensor:
    """Class of each test row: (n, D), (n,), (m, D) unit vectors -> (m,) int64.

    The k training rows of highest cosine similarity s vote for their class with weight
    exp(s / temperature); the class with the largest total wins (ties: the smaller class id).
    """
    predictions = []
    for start in range(0, len(test), QUERY_CHUNK):
        similarity, neighbours = (test[start:start + QUERY_CHUNK] @ train.T).topk(k, dim=1)  # (chunk, k)
        votes = torch.zeros(len(similarity), num_classes, dtype=similarity.dtype)
        weights = ((similarity - similarity[:, :1]) / temperature).exp()  # / exp(max / T): no overflow, same vote
        votes.scatter_add_(1, train_labels[neighbours], weights)
        predictions.append(votes.argmax(dim=1))
    return torch.cat(predictions)


@gin.configurable(module="mmmae")
class KNN:
    """Top-1 accuracy on `test_data` of a weighted kNN over the pooled features of `train_data`.

    Features: the `modality` encoded alone and unmasked, mean-pooled over its valid tokens (shared
    with a linear probe of the same data: mmmae.eval.features), L2-normalised, so similarity is
    cosine. `k` neighbours vote with weight exp(cos / temperature) (DINO: k = 20, temperature =
    0.07); k larger than the training set uses all of it. `label`: any integer per-sample key.
    Samples that lack the modality, and unreadable ones, are left out and counted.
    Result: {"modality", "label", "k", "temperature", "test_accuracy", "test_accuracy_ci" ([low,
    high], Wilson 95 %), "chance" (the share of the test split's most frequent class), "train_samples",
    "test_samples", "train_absent", "test_absent", "train_left_out", "test_left_out" (unreadable)}.
    """

    kind = "knn"

    def __init__(self, train_data: Dataset = gin.REQUIRED, test_data: Dataset = gin.REQUIRED, modality: str = "video",
                 label: str = "label", k: int = 20, temperature: float = 0.07, batch_size: int = 64):
        if k < 1 or temperature <= 0:
            raise ValueError(f"KNN: k = {k}, temperature = {temperature}: need k >= 1 and temperature > 0")
        self.train_data, self.test_data = train_data, test_data
        self.modality, self.label = modality, label
        self.k, self.temperature, self.batch_size = k, temperature, batch_size

    def __call__(self, model) -> dict:
        check_modality(model, self.modality, "KNN")
        train, test = (labelled_features(f"KNN.{split}", model, data, self.modality, self.label, self.batch_size)
                       for split, data in (("train_data", self.train_data), ("test_data", self.test_data)))
        train_x, test_x = (F.normalize(torch.from_numpy(s.x).float(), dim=-1) for s in (train, test))
        train_y, test_y = torch.from_numpy(train.y), torch.from_numpy(test.y)
        k = min(self.k, len(train_x))
        num_classes = int(max(train_y.max(), test_y.max())) + 1
        predicted = knn_predict(train_x, train_y, test_x, k, self.temperature, num_classes)
        test_accuracy = float((predicted == test_y).double().mean())
        return {"modality": self.modality, "label": self.label, "k": k, "temperature": self.temperature,
                "test_accuracy": test_accuracy, "test_accuracy_ci": wilson_interval(test_accuracy, len(test_x)),
                "chance": chance_accuracy(test), **split_counts(train, test)}
