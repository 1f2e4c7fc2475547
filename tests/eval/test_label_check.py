"""A label the evaluation data does not carry as class ids stops training before it starts."""

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from mmmae.config import ConfigError
from mmmae.eval.few_shot import FewShot
from mmmae.eval.forgery import LateFusionDetection
from mmmae.eval.label_check import check_labels, first_sample, label_problem
from tests.refusal import refusal

MICRO = str(Path(__file__).parents[1] / "fixtures" / "micro_overrides.gin")


def test_a_label_must_be_a_whole_number_the_samples_carry():
    sample = {"label": torch.tensor(3), "flag": True, "speed": torch.tensor(0.5), "caption": "a 3",
              "video": torch.zeros(3, 4, 8, 8)}
    assert label_problem(sample, "label") is None and label_problem(sample, "flag") is None
    assert label_problem(sample, "colour") == "carry no such per-sample label (they carry ['flag', 'label', 'speed'])"
    assert label_problem(sample, "speed").startswith("carry it as torch.float32, not class ids")
    assert label_problem(sample, "caption").startswith("carry it as str, not class ids")


class RandomDataset(Dataset):
    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> dict:
        return {"label": torch.randint(10, ()), "a": np.random.rand(), "b": random.random()}


def test_the_first_sample_is_drawn_without_moving_any_random_generator():
    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    first_sample(RandomDataset())
    drawn = torch.rand(()), np.random.rand(), random.random()
    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    assert drawn == (torch.rand(()), np.random.rand(), random.random())


def test_a_probe_label_the_data_lacks_is_refused_before_the_run_directory_exists(tmp_path, capsys):
    run = tmp_path / "run"
    message = refusal(["train", "--gin_file", "recipes/quickstart.gin", "--gin_file", MICRO,
                       "--gin_param", "evaluations.probes = [@imu/LinearProbe()]",
                       "--gin_param", "imu/LinearProbe.label = 'colour'", "--output_dir", str(run)], capsys)
    assert ("LinearProbe.label = 'colour': the samples of LinearProbe.train_data carry no such per-sample "
            "label") in message
    assert "In --gin_param 2: imu/LinearProbe.label = 'colour'" in message
    assert not run.exists()


def test_the_few_shot_and_forgery_labels_are_checked_too():
    data = [{"video": torch.zeros(3, 2, 8, 8), "label": torch.tensor(1), "fake": torch.tensor(0.5)}]
    with pytest.raises(ConfigError, match=r"FewShot.label = 'digit': the samples of FewShot.data carry no such"):
        check_labels([FewShot(data, label="digit")])
    with pytest.raises(ConfigError, match=r"LateFusionDetection.label = 'fake': the samples of "
                                          r"LateFusionDetection.train_data carry it as torch.float32"):
        check_labels([LateFusionDetection(data, data)])
