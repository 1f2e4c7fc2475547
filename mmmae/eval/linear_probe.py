"""Linear probe: logistic regression on frozen, pooled encoder features of one modality."""

import gin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch.utils.data import Dataset

from mmmae.eval.features import chance_accuracy, labelled_features, split_counts
from mmmae.eval.frozen import check_modality
from mmmae.eval.interval import wilson_interval


@gin.configurable(module="mmmae")
class LinearProbe:
    """Fit on `train_data`, report accuracy on `train_data` and `test_data` (fractions in [0, 1]).

    Features: the `modality` encoded alone and unmasked, mean-pooled over its valid tokens (text
    padding excluded; shared with a kNN of the same data: mmmae.eval.features). `label`: any
    integer per-sample key (MovingDigits: 'label', 'direction', 'speed_class'). Samples that
    lack the modality, and unreadable ones, are left out and counted.
    Result: {"modality", "label", "train_accuracy", "test_accuracy", "test_accuracy_ci" ([low,
    high], Wilson 95 %), "chance" (the share of the test split's most frequent class), "train_samples",
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
        train, test = (labelled_features(f"LinearProbe.{split}", model, data, self.modality, self.label,
                                         self.batch_size)
                       for split, data in (("train_data", self.train_data), ("test_data", self.test_data)))
        classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=self.max_iter))
        classifier.fit(train.x, train.y)
        test_accuracy = float(classifier.score(test.x, test.y))
        return {"modality": self.modality, "label": self.label,
                "train_accuracy": float(classifier.score(train.x, train.y)), "test_accuracy": test_accuracy,
                "test_accuracy_ci": wilson_interval(test_accuracy, len(test.x)),
                "chance": chance_accuracy(test), **split_counts(train, test)}
