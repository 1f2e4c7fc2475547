"""Linear probe: any modality (dict inputs too), absent samples left out."""

import pytest
import torch

from mmmae.eval.linear_probe import LinearProbe
from tests.eval.fake_model import FakeModality, FakeModel

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
                      "train_samples": 30, "test_samples": 12, "train_absent": 6, "test_absent": 3}
    assert model.training  # the probe puts the model back in the mode it found it in


def test_probe_names_a_missing_modality_and_a_split_without_it():
    model = FakeModel({"imu": FakeModality()})
    data = imu_samples([0, 1, 2], [True, True, True], seed=0)
    with pytest.raises(ValueError, match="no modality 'audio'"):
        LinearProbe(train_data=data, test_data=data, modality="audio")(model)
    absent = imu_samples([0, 1], [True, False], seed=0)[1:]
    with pytest.raises(ValueError, match="test_data: no sample has the modality 'imu'"):
        LinearProbe(train_data=data, test_data=absent, modality="imu")(model)
