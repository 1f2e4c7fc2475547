"""Exact resume of recipes whose forward draws from torch's global generator (a diffusion decoder's t and
noise, a VAE's sample, dropout): the trainer seeds it per micro-step (mmmae.train.module_seed), so a resumed
run, whose loader draws from it when its iterator starts mid-epoch, ends bitwise equal."""

import json

import pytest
import torch
from safetensors.torch import load_file

from mmmae.checkpoint import latest_checkpoint
from mmmae.config import GIN_DIR, parse_config
from mmmae.train import module_seed, pretrain
from tests.interrupt import run_until_interrupted
from tests.test_recipes import MICRO

# 8 samples in batches of 4: step 3's checkpoint falls mid-epoch, so resuming skips a batch.
LONGER = ["pretrain.steps = 6", "pretrain.save_every = 3", "pretrain.log_every = 1"]


def train(recipe: str, run_dir, resume: bool = False) -> None:
    parse_config([str(GIN_DIR / "recipes" / recipe), MICRO], LONGER)
    pretrain(output_dir=str(run_dir), resume=resume)


def losses(run_dir) -> list[float]:
    return [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("recipe", ["diffmae.gin", "siammcvae.gin"])
def test_a_recipe_drawing_from_the_global_generator_resumes_bitwise(recipe, tmp_path, monkeypatch):
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    train(recipe, whole)
    run_until_interrupted(lambda: train(recipe, resumed), monkeypatch)
    assert latest_checkpoint(resumed).name == "step_00000003"
    train(recipe, resumed, resume=True)
    expected, got = load_file(str(whole / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    assert losses(resumed) == losses(whole)


def test_module_seeds_differ_per_step_and_per_process():
    seeds = {module_seed(0, micro, process) for micro in range(50) for process in range(4)}
    assert len(seeds) == 200
    assert module_seed(0, 3, 1) == module_seed(0, 3, 1) != module_seed(1, 3, 1)
