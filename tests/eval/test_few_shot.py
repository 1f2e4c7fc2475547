"""Episodic N-way K-shot evaluation: the episodes, the classifiers, the interval and the errors."""

import numpy as np
import pytest
import torch

from mmmae.eval.few_shot import FewShot, draw_episodes, episode_accuracy, mean_interval
from mmmae.eval.report import EVALUATION_LINES, comparison_lines, flat_metrics
from tests.eval.fake_model import FakeModality, FakeModel

CLASSES = [5, 6, 7, 8, 9]


def labels_of(classes: list[int], per_class: int, seed: int = 0) -> np.ndarray:
    """per_class samples of each class, in a shuffled order."""
    return np.random.default_rng(seed).permutation(np.repeat(classes, per_class))


def clustered(labels: np.ndarray, spread: float, dim: int = 16, seed: int = 0) -> np.ndarray:
    """(n, dim) features: one random unit centre per class, plus isotropic noise of std `spread`."""
    rng = np.random.default_rng(seed)
    centres = {int(c): v / np.linalg.norm(v) for c, v in zip(np.unique(labels), rng.standard_normal((10, dim)))}
    return np.stack([centres[int(c)] for c in labels]) + spread * rng.standard_normal((len(labels), dim))


def test_episodes_draw_only_the_data_s_classes_with_disjoint_support_and_query():
    labels = labels_of(CLASSES, 30)
    episodes = draw_episodes(labels, ways=3, shots=5, queries=15, episodes=50, seed=0)
    for episode in episodes:
        assert len(set(episode.classes.tolist())) == 3 and set(episode.classes.tolist()) <= set(CLASSES)
        assert len(episode.support) == 15 and len(episode.query) == 45
        assert not set(episode.support.tolist()) & set(episode.query.tolist())
        np.testing.assert_array_equal(labels[episode.support], np.repeat(episode.classes, 5))  # class-major
        np.testing.assert_array_equal(labels[episode.query], np.repeat(episode.classes, 15))
    assert {c for e in episodes for c in e.classes.tolist()} == set(CLASSES)


def test_episodes_are_identical_under_a_seed_and_differ_across_seeds_and_shots():
    labels = labels_of(CLASSES, 30)

    def drawn(seed: int, shots: int = 1) -> list[np.ndarray]:
        return [np.concatenate([e.classes, e.support, e.query]) for e in draw_episodes(labels, 5, shots, 15, 20, seed)]

    assert all(np.array_equal(a, b) for a, b in zip(drawn(0), drawn(0)))
    assert not all(np.array_equal(a, b) for a, b in zip(drawn(0), drawn(1)))
    assert not all(np.array_equal(a[:5], b[:5]) for a, b in zip(drawn(0, 1), drawn(0, 5)))


def test_a_class_too_small_for_shots_and_queries_is_named_with_its_count():
    labels = np.concatenate([labels_of([5, 6, 7], 20), np.full(12, 8)])
    with pytest.raises(ValueError, match=r"a 5-shot episode with FewShot.queries = 15 needs 20 samples of each "
                                         r"class, but class 8 has 12; lower FewShot.shots or FewShot.queries"):
        draw_episodes(labels, ways=3, shots=5, queries=15, episodes=1, seed=0)


def test_more_ways_than_classes_is_an_error_naming_the_classes():
    with pytest.raises(ValueError, match=r"FewShot.ways = 6: the data has only 5 classes \(\[5, 6, 7, 8, 9\]\)"):
        draw_episodes(labels_of(CLASSES, 30), ways=6, shots=1, queries=15, episodes=1, seed=0)


@pytest.mark.parametrize("classifier", ["logreg", "prototype"])
@pytest.mark.parametrize("shots", [1, 5])
def test_separable_features_are_classified_perfectly(classifier, shots):
    labels = labels_of(CLASSES, 30)
    features = clustered(labels, spread=0.01)  # centres >= ~0.5 apart in 16 dimensions; noise 0.01
    accuracies = [episode_accuracy(features, e, shots, classifier) for e in draw_episodes(labels, 5, shots, 15, 20, 0)]
    assert accuracies == [1.0] * 20


@pytest.mark.parametrize("classifier", ["logreg", "prototype"])
def test_shuffled_labels_score_chance_within_the_episode_count_s_tolerance(classifier):
    labels = labels_of(CLASSES, 40)
    features = clustered(np.random.default_rng(1).permutation(labels), spread=0.01)  # features ignore the labels
    episodes = 400
    accuracy, _ = mean_interval([episode_accuracy(features, e, 5, classifier)
                                 for e in draw_episodes(labels, 5, 5, 15, episodes, 0)])
    # Each episode's accuracy lies in [0, 1], so its std is at most 0.5: 4 standard errors of the mean.
    assert abs(accuracy - 1 / 5) < 4 * 0.5 / np.sqrt(episodes)


def test_the_interval_is_the_mean_plus_minus_1_96_sigma_over_root_episodes():
    values = [0.2, 0.4, 0.6, 0.8]
    mean, (low, high) = mean_interval(values)
    half = 1.96 * np.std(values, ddof=1) / 2
    assert mean == pytest.approx(0.5) and low == pytest.approx(0.5 - half) and high == pytest.approx(0.5 + half)
    assert mean_interval([0.7]) == (0.7, [0.7, 0.7])


def dataset(labels: np.ndarray, features: np.ndarray) -> list[dict]:
    """Samples whose single 'video' token is the feature: the fake encoder pools it back."""
    return [{"video": torch.tensor(f, dtype=torch.float32)[None], "label": int(c)} for f, c in zip(features, labels)]


def test_few_shot_scores_each_shot_count_and_classifier_on_the_same_episodes():
    labels = labels_of(CLASSES, 25)
    data = dataset(labels, clustered(labels, spread=0.01))
    evaluation = FewShot(data=data, shots=[1, 5], queries=10, episodes=30, batch_size=16)
    result = evaluation(FakeModel({"video": FakeModality()}))
    assert [(s["shots"], s["classifier"]) for s in result["scores"]] == [
        (1, "logreg"), (1, "prototype"), (5, "logreg"), (5, "prototype")]
    assert all(s["accuracy"] == 1.0 and s["accuracy_ci"] == [1.0, 1.0] for s in result["scores"])
    assert {k: result[k] for k in ("classes", "samples", "chance", "ways", "queries", "episodes")} == {
        "classes": CLASSES, "samples": 125, "chance": 0.2, "ways": 5, "queries": 10, "episodes": 30}
    assert evaluation(FakeModel({"video": FakeModality()})) == result  # reproducible under its seed


def test_few_shot_settings_are_checked():
    with pytest.raises(ValueError, match=r"FewShot.classifiers = \['svm'\]: use one or more of"):
        FewShot(data=[], classifiers=["svm"])
    with pytest.raises(ValueError, match=r"need ways >= 2 and shots \(each\), queries and episodes >= 1"):
        FewShot(data=[], shots=[0, 5])


def test_the_report_prints_compares_and_flattens_each_score():
    def result(accuracy: float) -> dict:
        return {"modality": "video", "label": "label", "ways": 5, "queries": 15, "episodes": 600, "classes": CLASSES,
                "samples": 1024, "absent": 0, "left_out": 0, "chance": 0.2,
                "scores": [{"shots": 1, "classifier": "logreg", "accuracy": accuracy,
                            "accuracy_ci": [accuracy - 0.01, accuracy + 0.01]}]}

    entry = {"kind": "few_shot", "pretrained": result(0.5), "random_init": result(0.3)}
    [line] = EVALUATION_LINES["few_shot"]("pretrained", entry["pretrained"])
    assert line.startswith("few-shot 5-way 1-shot video logreg, pretrained: accuracy 0.500 (95 % CI 0.490-0.510) "
                           "(chance 0.200; 600 episodes of 15 queries per class over classes [5, 6, 7, 8, 9];")
    [row] = comparison_lines([entry])[2:]
    assert "few-shot 5-way 1-shot video logreg" in row and "+0.200 *" in row
    assert flat_metrics({"evaluations": [entry]}) == {"few-shot 5-way 1-shot video logreg accuracy (pretrained)": 0.5,
                                                      "few-shot 5-way 1-shot video logreg accuracy (random_init)": 0.3}
