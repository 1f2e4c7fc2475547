"""Episodic N-way K-shot classification on frozen, pooled encoder features (the few-shot protocol).

An episode draws `ways` classes of the data, then `shots` support and `queries` query samples of
each (disjoint); a classifier fitted on the support features labels the queries. The accuracy is
the mean over `episodes` episodes with its 95 % interval, mean ± 1.96 σ / sqrt(episodes).
"""

from collections.abc import Sequence
from dataclasses import dataclass

import gin
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import normalize
from torch.utils.data import Dataset

from mmmae.eval.features import labelled_features
from mmmae.eval.frozen import check_modality

CLASSIFIERS = ("logreg", "prototype")
Z_95 = 1.96


@dataclass
class Episode:
    """classes (ways,) the class ids drawn; support (ways * shots,) and query (ways * queries,)
    sample positions, class-major (class i's rows first, in the order of `classes`)."""

    classes: np.ndarray
    support: np.ndarray
    query: np.ndarray


def draw_episodes(labels: np.ndarray, ways: int, shots: int, queries: int, episodes: int, seed: int,
                  owner: str = "FewShot") -> list[Episode]:
    """`episodes` episodes over the classes present in `labels` (n,), from numpy's generator seeded
    by (seed, shots): the same arguments give the same episodes. A class with fewer than shots +
    queries samples, or fewer classes than `ways`, is an error that `owner` names."""
    classes = np.unique(labels)
    if ways > len(classes):
        raise ValueError(f"{owner}.ways = {ways}: the data has only {len(classes)} classes ({classes.tolist()}); "
                         f"lower {owner}.ways or give the data more classes")
    members = {int(c): np.flatnonzero(labels == c) for c in classes}
    needed = shots + queries
    small = {c: len(m) for c, m in members.items() if len(m) < needed}
    if small:
        counts = ", ".join(f"class {c} has {n}" for c, n in small.items())
        raise ValueError(f"{owner}: a {shots}-shot episode with {owner}.queries = {queries} needs {needed} samples of "
                         f"each class, but {counts}; lower {owner}.shots or {owner}.queries, or add samples to "
                         f"{owner}.data (its num_samples)")
    rng = np.random.default_rng([seed, shots])
    drawn = []
    for _ in range(episodes):
        chosen = rng.choice(classes, size=ways, replace=False)
        picks = [rng.choice(members[int(c)], size=needed, replace=False) for c in chosen]
        drawn.append(Episode(chosen, np.concatenate([p[:shots] for p in picks]),
                             np.concatenate([p[shots:] for p in picks])))
    return drawn


def episode_accuracy(features: np.ndarray, episode: Episode, shots: int, classifier: str, C: float = 1.0) -> float:
    """Share of the episode's queries labelled correctly by `classifier` fitted on its support.

    features (n, D), L2-normalised per row here. 'logreg': sklearn's multinomial logistic
    regression (inverse regularisation C); 'prototype': the nearest class mean by cosine similarity.
    """
    ways = len(episode.classes)
    support, query = normalize(features[episode.support]), normalize(features[episode.query])
    support_y = np.repeat(np.arange(ways), shots)
    query_y = np.repeat(np.arange(ways), len(episode.query) // ways)
    if classifier == "logreg":
        predicted = LogisticRegression(C=C, max_iter=1000).fit(support, support_y).predict(query)
    else:
        prototypes = normalize(support.reshape(ways, shots, -1).mean(axis=1))
        predicted = (query @ prototypes.T).argmax(axis=1)
    return float((predicted == query_y).mean())


def mean_interval(accuracies: Sequence[float]) -> tuple[float, list[float]]:
    """The mean of per-episode accuracies and its 95 % interval, mean ± 1.96 σ / sqrt(E) (σ: the
    sample standard deviation of the E accuracies; 0 for a single episode)."""
    values = np.asarray(accuracies, np.float64)
    mean = float(values.mean())
    half = Z_95 * float(values.std(ddof=1)) / np.sqrt(len(values)) if len(values) > 1 else 0.0
    return mean, [mean - half, mean + half]


@gin.configurable(module="mmmae")
class FewShot:
    """N-way K-shot accuracy on the classes of `data` (held out from pretraining by its config, e.g.
    `MovingDigits.classes`), for each shot count in `shots` and each classifier in `classifiers`.

    Features: the `modality` encoded alone and unmasked, mean-pooled over its valid tokens (shared
    with other evaluations of the same data: mmmae.eval.features). `label`: any integer per-sample
    key. Every classifier and model scores the same episodes (seeded by `seed` and the shot count).
    Result: {"modality", "label", "ways", "queries", "episodes", "classes" (those of the data),
    "samples", "absent", "left_out", "chance" (1 / ways), "scores": [{"shots", "classifier",
    "accuracy", "accuracy_ci" ([low, high])}, ...]}.
    """

    kind = "few_shot"

    def __init__(self, data: Dataset = gin.REQUIRED, modality: str = "video", label: str = "label", ways: int = 5,
                 shots: Sequence[int] = (1, 5), queries: int = 15, episodes: int = 600,
                 classifiers: Sequence[str] = CLASSIFIERS, C: float = 1.0, seed: int = 0, batch_size: int = 64):
        unknown = [c for c in classifiers if c not in CLASSIFIERS]
        if unknown or not classifiers:
            raise ValueError(f"FewShot.classifiers = {list(classifiers)}: use one or more of {CLASSIFIERS}")
        if ways < 2 or queries < 1 or episodes < 1 or not shots or min(shots) < 1:
            raise ValueError(f"FewShot: ways = {ways}, shots = {list(shots)}, queries = {queries}, episodes = "
                             f"{episodes}; need ways >= 2 and shots (each), queries and episodes >= 1")
        self.data, self.modality, self.label = data, modality, label
        self.ways, self.shots, self.queries, self.episodes = ways, tuple(shots), queries, episodes
        self.classifiers, self.C, self.seed, self.batch_size = tuple(classifiers), C, seed, batch_size

    def __call__(self, model) -> dict:
        check_modality(model, self.modality, "FewShot")
        split = labelled_features("FewShot.data", model, self.data, self.modality, self.label, self.batch_size)
        scores = []
        for shots in self.shots:
            drawn = draw_episodes(split.y, self.ways, shots, self.queries, self.episodes, self.seed)
            for classifier in self.classifiers:
                accuracy, interval = mean_interval([episode_accuracy(split.x, e, shots, classifier, self.C)
                                                    for e in drawn])
                scores.append({"shots": shots, "classifier": classifier, "accuracy": accuracy,
                               "accuracy_ci": interval})
        return {"modality": self.modality, "label": self.label, "ways": self.ways, "queries": self.queries,
                "episodes": self.episodes, "classes": np.unique(split.y).tolist(), "samples": len(split.y),
                "absent": split.absent, "left_out": split.left_out, "chance": 1 / self.ways, "scores": scores}
