"""Training with a masking-ratio curriculum and the adaptive batch: logged batch sizes, exact resume."""

import json

import pytest
import torch
from safetensors.torch import load_file

from mmmae.checkpoint import latest_checkpoint
from mmmae.config import ConfigError, parse_config
from mmmae.train import pretrain
from tests.conftest import MICRO_GIN
from tests.interrupt import run_until_interrupted

# 16 tubes of 2 tokens; 50 % hidden at step 0 up to 87.5 % at step 8: 8, 8, 7, 6, 5, 5 tubes visible
# in steps 0-5, so batches of round(4 x 8 / visible) = 4, 4, 5, 5, 6, 6.
ADAPTIVE = ["video/TubeletTokenizer.patch = 4", "video/RatioCurriculum.masker = @video/TubeMasking",
            "video/RatioCurriculum.start = 0.5", "video/RatioCurriculum.end = 0.875",
            "video/RatioCurriculum.steps = 8", "video/Modality.masker = @video/RatioCurriculum()",
            "pretrain.adaptive_batch = @AdaptiveBatch", "pretrain.log_every = 1"]


def train(run_dir, resume=False):
    parse_config([MICRO_GIN], ADAPTIVE)
    return pretrain(output_dir=str(run_dir), resume=resume)


def records(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_adaptive_batch_logs_its_sizes_and_resumes_bitwise(tmp_path, monkeypatch):
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    summary = train(whole)
    assert [r["batch_size"] for r in records(whole)] == [4, 4, 5, 5, 6, 6]
    assert summary["global_batch"] == 4  # step 0's batch: the learning rate's
    run_until_interrupted(lambda: train(resumed), monkeypatch)
    assert latest_checkpoint(resumed).name == "step_00000003"
    train(resumed, resume=True)
    expected, got = load_file(str(whole / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    assert [r["loss"] for r in records(resumed)] == [r["loss"] for r in records(whole)]
    assert [r["batch_size"] for r in records(resumed)] == [4, 4, 5, 5, 6, 6]


def test_an_adaptive_batch_larger_than_the_dataset_fails_before_the_run_directory_exists(tmp_path):
    parse_config([MICRO_GIN], [*ADAPTIVE, "train/MovingDigits.num_samples = 8", "pretrain.batch_size = 7"])
    with pytest.raises(ConfigError, match=r"pretrain\.adaptive_batch: micro-step \d+ needs \d+ samples"):
        pretrain(output_dir=str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()
