"""Pooled features shared within an evaluation run: a probe and a kNN of the same model, data and
modality extract once; any integer per-sample key is a label."""

import numpy as np
import pytest
import torch

from mmmae.eval.evaluate import run_evaluations
from mmmae.eval.features import pooled_features, shared_features
from mmmae.eval.knn import KNN
from mmmae.eval.linear_probe import LinearProbe
from tests.eval.fake_model import FakeModality, FakeModel

CENTRES = torch.tensor([[3.0, 0.0], [0.0, 3.0], [-3.0, 0.0], [0.0, -3.0]])


def samples(n: int, seed: int) -> list[dict]:
    """Tokens (2, 2) near the centre of `direction` (4 classes); `label` is unrelated to them."""
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for i in range(n):
        direction = i % 4
        tokens = CENTRES[direction] + 0.1 * torch.randn(2, 2, generator=generator)
        rows.append({"video": tokens, "direction": direction, "label": (i // 4) % 2, "speed": 0.5 + i / n,
                     "index": i})
    return rows


def test_a_probe_and_a_knn_extract_each_split_once_per_model():
    train, test = samples(32, seed=0), samples(16, seed=1)
    batches = 4 + 2  # 32 and 16 samples in batches of 8
    tasks = [LinearProbe(train_data=train, test_data=test, label="direction", batch_size=8),
             KNN(train_data=train, test_data=test, label="direction", k=3, batch_size=8),
             LinearProbe(train_data=train, test_data=test, label="label", batch_size=8)]
    model, fresh = FakeModel({"video": FakeModality()}), FakeModel({"video": FakeModality()})
    probe, knn, other_label = run_evaluations(model, tasks, fresh)
    assert len(model.encoded) == len(fresh.encoded) == batches  # one extraction each, shared by three tasks
    assert probe["pretrained"]["test_accuracy"] == knn["pretrained"]["test_accuracy"] == 1.0
    assert other_label["pretrained"]["label"] == "label"
    alone = FakeModel({"video": FakeModality()})
    for task in tasks:  # outside run_evaluations nothing is shared
        task(alone)
    assert len(alone.encoded) == 3 * batches


def test_features_are_shared_by_identity_of_model_and_data_within_the_context_only():
    data, copy = samples(8, seed=0), samples(8, seed=0)
    model, other = FakeModel({"video": FakeModality()}), FakeModel({"video": FakeModality()})
    with shared_features():
        first = pooled_features(model, data, "video", batch_size=8)
        assert pooled_features(model, data, "video", batch_size=8) is first
        pooled_features(model, copy, "video", batch_size=8)  # equal data, another object
        pooled_features(other, data, "video", batch_size=8)
        pooled_features(model, data, "video", batch_size=4)  # batches of another size
    assert len(model.encoded) == 1 + 1 + 2 and len(other.encoded) == 1
    with shared_features():
        assert pooled_features(model, data, "video", batch_size=8) is not first  # a new run extracts again
    np.testing.assert_array_equal(pooled_features(model, data, "video", batch_size=8).features, first.features)


def test_every_per_sample_scalar_comes_with_the_features_in_order():
    data = samples(10, seed=0)
    pooled = pooled_features(FakeModel({"video": FakeModality()}), data, "video", batch_size=4)
    assert set(pooled.scalars) == {"direction", "label", "speed", "index"}
    np.testing.assert_array_equal(pooled.scalars["index"], np.arange(10))
    np.testing.assert_array_equal(pooled.scalars["direction"], [s["direction"] for s in data])
    assert pooled.features.shape == (10, 2) and (pooled.absent, pooled.left_out) == (0, 0)


def test_a_label_the_samples_lack_or_carry_as_a_float_is_named():
    data = samples(8, seed=0)
    model = FakeModel({"video": FakeModality()})
    with pytest.raises(ValueError, match=r"LinearProbe.label = 'colour': the samples of LinearProbe.train_data carry "
                                         r"no such per-sample label \(they carry \['direction', 'index', 'label', "
                                         r"'speed'\]\)"):
        LinearProbe(train_data=data, test_data=data, label="colour")(model)
    with pytest.raises(ValueError, match="KNN.label = 'speed': the samples of KNN.train_data carry it as float64, "
                                         "not class ids"):
        KNN(train_data=data, test_data=data, label="speed")(model)


def test_chance_is_the_share_of_the_most_frequent_test_class():
    train = [s for s in samples(16, seed=0) if s["direction"] != 0]  # training's classes 1, 2, 3, balanced
    rows = samples(16, seed=1)
    test = [rows[0], rows[4], rows[8], rows[12], rows[1]]
    assert [s["direction"] for s in test] == [0, 0, 0, 0, 1]  # class 0, unseen in training, is chance's answer
    model = FakeModel({"video": FakeModality()})
    assert LinearProbe(train_data=train, test_data=test, label="direction")(model)["chance"] == 4 / 5
    assert KNN(train_data=train, test_data=test, label="direction", k=3)(model)["chance"] == 4 / 5
