"""Linear probe: any modality (dict inputs too), absent and unreadable samples left out."""

import pytest
import torch

from mmmae.eval.interval import wilson_interval
from mmmae.eval.linear_probe import LinearProbe
from tests.eval.fake_model import FakeModality, FakeModel
from tests.eval.flaky import FlakyDataset

CENTERS = torch.tensor([[2.0, 0.0], [0.0, 2.0], [-2.0, -2.0]])


def imu_samples(labels: list[int], present: list[bool], seed: int) -> list[dict]:
    """IMU-like samples: two devices at different lengths, tokens near their class's centre.
    An absent sample copies the first sample's inputs under another label: counted, it would be misfit."""
    generator = torch.Generator().manual_seed(seed)
    samples = []
    for i, (label, has_imu) in enumerate(zip(labels, present)):
        def device(length: int) -> torch.Tensor:
            return CENTERS[label] + 0.1 * torch.randn(length, 2, generator=generator)
        imu = {"wrist": device(3), "ankle": device(2)} if has_imu else samples[0]["imu"]
        samples.append({"imu": imu, "imu_present": has_imu, "label": label if has_imu else (labels[0] + 1) % 3,
                        "index": i})
    return samples


def test_probe_on_dict_inputs_leaves_absent_samples_out():
    train = imu_samples([i % 3 for i in range(36)], [i % 6 != 5 for i in range(36)], seed=0)
    test = imu_samples([i % 3 for i in range(15)], [i % 5 != 4 for i in range(15)], seed=1)
    model = FakeModel({"imu": FakeModality()}).train()
    result = LinearProbe(train_data=train, test_data=test, modality="imu", batch_size=8)(model)
    assert result == {"modality": "imu", "label": "label", "train_accuracy": 1.0, "test_accuracy": 1.0,
                      "test_accuracy_ci": wilson_interval(1.0, 12), "chance": 4 / 12,
                      "train_samples": 30, "test_samples": 12, "train_absent": 6, "test_absent": 3,
                      "train_left_out": 0, "test_left_out": 0}
    assert model.training  # the probe puts the model back in the mode it found it in


def test_probe_names_a_missing_modality_and_a_split_without_it():
    model = FakeModel({"imu": FakeModality()})
    data = imu_samples([0, 1, 2], [True, True, True], seed=0)
    with pytest.raises(ValueError, match="no modality 'audio'"):
        LinearProbe(train_data=data, test_data=data, modality="audio")(model)
    absent = imu_samples([0, 1], [True, False], seed=0)[1:]
    with pytest.raises(ValueError, match="test_data: no sample has the modality 'imu'"):
        LinearProbe(train_data=data, test_data=absent, modality="imu")(model)
    unreadable = FlakyDataset(data, unreadable={0, 1, 2})
    with pytest.raises(ValueError, match=r"train_data: no sample .* \(0 without it, 3 left out as unreadable"):
        LinearProbe(train_data=unreadable, test_data=data, modality="imu")(model)


def test_unreadable_samples_are_left_out_once_and_counted():
    train = FlakyDataset(imu_samples([i % 3 for i in range(36)], [i % 6 != 5 for i in range(36)], seed=0),
                         unreadable={0, 7, 8, 9, 20, 35})
    test = FlakyDataset(imu_samples([i % 3 for i in range(15)], [True] * 15, seed=1), unreadable={4, 5, 6, 7, 8})
    model = FakeModel({"imu": FakeModality()})
    result = LinearProbe(train_data=train, test_data=test, modality="imu", batch_size=4)(model)
    readable = LinearProbe(train_data=train.readable(), test_data=test.readable(), modality="imu", batch_size=4)(model)
    assert result == {**readable, "train_left_out": 6, "test_left_out": 5}  # the same features, each once
    assert (result["train_samples"], result["train_absent"], result["test_samples"]) == (25, 5, 10)
