"""Weighted kNN: DINO's temperature-weighted votes, separable features, shuffled labels, absent samples."""

import pytest
import torch

import mmmae.eval.knn as knn
from mmmae.eval.interval import wilson_interval
from mmmae.eval.knn import KNN, knn_predict
from tests.eval.fake_model import FakeModality, FakeModel
from tests.eval.flaky import FlakyDataset


def test_votes_are_weighted_by_similarity_over_temperature():
    # Two class-0 neighbours at cos 0.6, one class-1 neighbour at cos 1: the majority wins at a
    # high temperature (weights nearly equal), the closest at a low one (e^(1/0.05) >> 2 e^(0.6/0.05)).
    train = torch.tensor([[0.6, 0.8], [0.6, -0.8], [1.0, 0.0], [-1.0, 0.0]])
    labels = torch.tensor([0, 0, 1, 2])
    query = torch.tensor([[1.0, 0.0]])
    assert knn_predict(train, labels, query, k=3, temperature=10.0, num_classes=3).tolist() == [0]
    assert knn_predict(train, labels, query, k=3, temperature=0.05, num_classes=3).tolist() == [1]
    assert knn_predict(train, labels, query, k=1, temperature=10.0, num_classes=3).tolist() == [1]


def test_prediction_is_the_same_in_chunks(monkeypatch):
    generator = torch.Generator().manual_seed(0)
    train = torch.nn.functional.normalize(torch.randn(30, 4, generator=generator), dim=-1)
    labels = torch.randint(0, 3, (30,), generator=generator)
    test = torch.nn.functional.normalize(torch.randn(7, 4, generator=generator), dim=-1)
    whole = knn_predict(train, labels, test, k=5, temperature=0.07, num_classes=3)
    monkeypatch.setattr(knn, "QUERY_CHUNK", 2)
    assert torch.equal(knn_predict(train, labels, test, k=5, temperature=0.07, num_classes=3), whole)


def clustered(n: int, seed: int, shuffle_labels: bool = False, absent: set[int] = frozenset()) -> list[dict]:
    """Tokens (2, 8) near one of 4 random directions per class; absent samples carry another
    class's direction under the wrong label (they would be misclassified if counted)."""
    centres = torch.randn(4, 8, generator=torch.Generator().manual_seed(99))
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 4
    if shuffle_labels:
        labels = labels[torch.randperm(n, generator=generator)]
    samples = []
    for i in range(n):
        c = int(torch.arange(n)[i] % 4)
        tokens = centres[c] + 0.1 * torch.randn(2, 8, generator=generator)
        present = i not in absent
        samples.append({"video": tokens, "video_present": present, "label": int(labels[i]) if present else (c + 1) % 4})
    return samples


def test_separable_features_are_classified_perfectly_and_absent_samples_left_out():
    train, test = clustered(40, seed=0, absent={3, 17}), clustered(20, seed=1, absent={5})
    result = KNN(train_data=train, test_data=test, k=5, batch_size=8)(FakeModel({"video": FakeModality()}))
    assert result == {"modality": "video", "label": "label", "k": 5, "temperature": 0.07, "test_accuracy": 1.0,
                      "test_accuracy_ci": wilson_interval(1.0, 19), "chance": 5 / 19, "train_samples": 38,
                      "test_samples": 19, "train_absent": 2, "test_absent": 1,
                      "train_left_out": 0, "test_left_out": 0}


def test_unreadable_samples_are_left_out_once_and_counted():
    train = FlakyDataset(clustered(40, seed=0, absent={3}), unreadable={0, 1, 2, 3, 4, 5, 6, 39})
    test = FlakyDataset(clustered(20, seed=1), unreadable={10, 11})
    model = FakeModel({"video": FakeModality()})
    result = KNN(train_data=train, test_data=test, k=5, batch_size=8)(model)
    readable = KNN(train_data=train.readable(), test_data=test.readable(), k=5, batch_size=8)(model)
    assert result == {**readable, "train_left_out": 8, "test_left_out": 2}
    assert (result["train_samples"], result["train_absent"], result["test_samples"]) == (32, 0, 18)


def test_shuffled_training_labels_score_about_chance():
    train, test = clustered(400, seed=0, shuffle_labels=True), clustered(400, seed=1)
    result = KNN(train_data=train, test_data=test, k=20)(FakeModel({"video": FakeModality()}))
    assert abs(result["test_accuracy"] - 0.25) < 0.1


def test_k_beyond_the_training_set_uses_all_of_it():
    train, test = clustered(8, seed=0), clustered(8, seed=1)
    result = KNN(train_data=train, test_data=test, k=50, temperature=1e-3)(FakeModel({"video": FakeModality()}))
    assert result["k"] == 8 and result["test_accuracy"] == 1.0  # the nearest dominates at a tiny temperature


def test_errors_name_the_setting_the_modality_and_the_split():
    data = clustered(4, seed=0)
    with pytest.raises(ValueError, match="KNN: k = 0"):
        KNN(train_data=data, test_data=data, k=0)
    with pytest.raises(ValueError, match="no modality 'audio'"):
        KNN(train_data=data, test_data=data, modality="audio")(FakeModel({"video": FakeModality()}))
    with pytest.raises(ValueError, match="KNN.train_data: no sample has the modality 'video'"):
        KNN(train_data=clustered(4, seed=0, absent={0, 1, 2, 3}), test_data=data)(FakeModel({"video": FakeModality()}))
