"""Two-stream real/fake detection with late score fusion (Unmasking Deepfakes' recipe on frozen
features): a binary classifier per stream (RGB: the video modality, flow: the flow modality),
scores fused p = w p_rgb + (1 - w) p_flow, ROC-AUC of each with a bootstrap interval."""

from collections.abc import Sequence

import gin
import numpy as np
from scipy.stats import mannwhitneyu
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch.utils.data import Dataset

from mmmae.data.moving_digits.forgery import FAKE_KINDS
from mmmae.eval.features import labelled_features, pooled_features, shared_features, split_counts
from mmmae.eval.frozen import check_modality
from mmmae.eval.interval import CONFIDENCE

STREAMS = ("rgb", "flow", "fused")


def auc_interval(y: np.ndarray, scores: np.ndarray, resamples: int, seed: int) -> list[float]:
    """[low, high] 95 % percentile interval of the ROC-AUC of `scores` (n,) for labels `y` (n,) 0/1,
    from a stratified bootstrap: each resample draws the real and the fake samples separately, with
    replacement, keeping their counts (pROC's default), so every resample has both classes. A
    resample's AUC is its Mann-Whitney U of fake over real scores / (fakes x reals), roc_auc_score's
    value (ties count half), for all resamples at once."""
    rng = np.random.default_rng(seed)
    real, fake = scores[y == 0], scores[y == 1]
    real_draws = real[rng.integers(len(real), size=(resamples, len(real)))]
    fake_draws = fake[rng.integers(len(fake), size=(resamples, len(fake)))]
    u = mannwhitneyu(fake_draws, real_draws, axis=1, method="asymptotic").statistic
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(u / (len(real) * len(fake)), [tail, 100 - tail])
    return [float(low), float(high)]


def fused_scores(p_rgb: np.ndarray, p_flow: np.ndarray, weight: float) -> np.ndarray:
    """Late score fusion: weight x p_rgb + (1 - weight) x p_flow."""
    return weight * p_rgb + (1 - weight) * p_flow


@gin.configurable(module="mmmae")
class LateFusionDetection:
    """Real/fake detection from frozen, mean-pooled features of two streams, scored by ROC-AUC.

    Per stream (`rgb`: a video modality, `flow`: a flow modality), a logistic regression (features
    standardised, as LinearProbe) is fitted on `train_data` to the per-sample 0/1 `label`, and
    scores `test_data` (P(fake)); the fused score is `fused_scores` with `weight` (w, on RGB).
    AUCs (sklearn's roc_auc_score) of rgb, flow and fused on the whole test split and, per fake
    kind (`kind_key`: ids into `kind_names`, 0 real), on the real samples and that kind's fakes;
    each with a 95 % stratified-bootstrap interval (`auc_interval`, `resamples`, seeded by `seed`).
    Data: e.g. ForgedMovingDigits (mmmae/data/moving_digits/forgery.py), whose samples carry both
    streams' inputs (video; flow: the ground truth, or WithEstimatedFlow's).
    Result: {"streams": {"rgb": m, "flow": m}, "label", "weight", "auc": {stream: value},
    "auc_ci": {stream: [low, high]}, "train_auc": {rgb, flow}, "by_kind": {kind: {"auc", "auc_ci",
    "real", "fake"}}, "chance": 0.5, and the sample counts of LinearProbe}.
    """

    kind = "forgery"

    def __init__(self, train_data: Dataset = gin.REQUIRED, test_data: Dataset = gin.REQUIRED, rgb: str = "video",
                 flow: str = "flow", weight: float = 0.5, label: str = "fake", kind_key: str = "fake_kind",
                 kind_names: Sequence[str] = FAKE_KINDS, batch_size: int = 64, max_iter: int = 2000,
                 resamples: int = 1000, seed: int = 0):
        if not 0 <= weight <= 1:
            raise ValueError(f"LateFusionDetection.weight = {weight}: the RGB stream's share must lie in [0, 1]")
        self.train_data, self.test_data = train_data, test_data
        self.streams = {"rgb": rgb, "flow": flow}
        self.weight, self.label, self.kind_key, self.kind_names = weight, label, kind_key, tuple(kind_names)
        self.batch_size, self.max_iter, self.resamples, self.seed = batch_size, max_iter, resamples, seed

    def stream_scores(self, model, modality: str) -> tuple[np.ndarray, np.ndarray, dict, float]:
        """Fit one stream: test P(fake) (n,), test labels (n,), the sample counts, the train split's AUC."""
        check_modality(model, modality, "LateFusionDetection")
        train, test = (labelled_features(f"LateFusionDetection.{split}", model, data, modality, self.label,
                                         self.batch_size)
                       for split, data in (("train_data", self.train_data), ("test_data", self.test_data)))
        for split, part in (("train_data", train), ("test_data", test)):
            if set(np.unique(part.y)) != {0, 1}:
                raise ValueError(f"LateFusionDetection.{split}: label {self.label!r} must take both values 0 and 1 "
                                 f"(real and fake), got {sorted(set(part.y.tolist()))}")
        classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=self.max_iter))
        classifier.fit(train.x, train.y)
        train_auc = roc_auc_score(train.y, classifier.predict_proba(train.x)[:, 1])
        return classifier.predict_proba(test.x)[:, 1], test.y, split_counts(train, test), train_auc

    def __call__(self, model) -> dict:
        with shared_features():  # the test split's labels and kinds come from the features' extraction
            (p_rgb, y, counts, rgb_train), (p_flow, y_flow, _, flow_train) = (
                self.stream_scores(model, m) for m in self.streams.values())
            kinds = pooled_features(model, self.test_data, self.streams["rgb"], self.batch_size).scalars
        if len(y) != len(y_flow) or (y != y_flow).any():
            raise ValueError(f"LateFusionDetection: the streams {self.streams} saw different test samples "
                             f"({len(y)} and {len(y_flow)}); both must be in every sample of test_data")
        if self.kind_key not in kinds:
            raise ValueError(f"LateFusionDetection.kind_key = {self.kind_key!r}: the samples of test_data carry no "
                             f"such per-sample key (they carry {sorted(kinds)})")
        scores = {"rgb": p_rgb, "flow": p_flow, "fused": fused_scores(p_rgb, p_flow, self.weight)}
        result = {"streams": dict(self.streams), "label": self.label, "weight": self.weight, "chance": 0.5,
                  **self.aucs(y, scores), "train_auc": {"rgb": float(rgb_train), "flow": float(flow_train)},
                  "by_kind": {}, **counts}
        kind = kinds[self.kind_key]
        for k in sorted(set(kind[y == 1].tolist())):
            rows = (y == 0) | (kind == k)
            result["by_kind"][self.kind_names[k]] = {
                **self.aucs(y[rows], {s: v[rows] for s, v in scores.items()}),
                "real": int((y[rows] == 0).sum()), "fake": int((y[rows] == 1).sum())}
        return result

    def aucs(self, y: np.ndarray, scores: dict[str, np.ndarray]) -> dict[str, dict]:
        """{"auc": {stream: AUC}, "auc_ci": {stream: [low, high]}} for STREAMS."""
        return {"auc": {s: float(roc_auc_score(y, scores[s])) for s in STREAMS},
                "auc_ci": {s: auc_interval(y, scores[s], self.resamples, self.seed) for s in STREAMS}}
