"""k-nearest-neighbour classification on frozen, pooled, L2-normalised features (DINO's weighted kNN)."""

import gin
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from mmmae.eval.linear_probe import check_modality, extract_features
from mmmae.eval.loader import no_samples_error

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

    Features: the `modality` encoded alone and unmasked, mean-pooled over its valid tokens,
    L2-normalised, so similarity is cosine. `k` neighbours vote with weight exp(cos / temperature)
    (DINO: k = 20, temperature = 0.07); k larger than the training set uses all of it. Samples
    that lack the modality, and unreadable ones, are left out and counted.
    Result: {"modality", "label", "k", "temperature", "test_accuracy", "train_samples",
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
        splits = {}
        for split, data in (("train_data", self.train_data), ("test_data", self.test_data)):
            x, y, absent, left_out = extract_features(model, data, self.modality, self.label, self.batch_size)
            if len(x) == 0:
                raise no_samples_error(f"KNN.{split}", self.modality, absent, left_out)
            splits[split] = (F.normalize(torch.from_numpy(x).float(), dim=-1), torch.from_numpy(y).long(), absent,
                             left_out)
        (train_x, train_y, train_absent, train_left_out), (test_x, test_y, test_absent, test_left_out) = \
            splits.values()
        k = min(self.k, len(train_x))
        num_classes = int(max(train_y.max(), test_y.max())) + 1
        predicted = knn_predict(train_x, train_y, test_x, k, self.temperature, num_classes)
        return {"modality": self.modality, "label": self.label, "k": k, "temperature": self.temperature,
                "test_accuracy": float((predicted == test_y).double().mean()),
                "train_samples": len(train_x), "test_samples": len(test_x),
                "train_absent": train_absent, "test_absent": test_absent,
                "train_left_out": train_left_out, "test_left_out": test_left_out}
