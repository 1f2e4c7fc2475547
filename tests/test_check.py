"""`mmmae check`: one step of a recipe on one batch, reported, nothing written; `mmmae train` runs it first."""

import re
import subprocess
import sys
from pathlib import Path

import gin
import pytest
import torch
from safetensors.torch import load_file

import mmmae.check
import mmmae.train
from mmmae.check import check_recipe, dry_step
from mmmae.cli import main
from mmmae.config import ConfigError, parse_config
from mmmae.data.moving_digits.dataset import MovingDigits
from mmmae.model import MaskedAutoencoder
from mmmae.train import pretrain
from tests.conftest import MICRO_GIN

MICRO_OVERRIDES = str(Path(__file__).parent / "fixtures" / "micro_overrides.gin")
QUICKSTART_MICRO = ["recipes/quickstart.gin", MICRO_OVERRIDES]  # four modalities, running statistics


def test_check_prints_parameters_tokens_step_and_memory_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    main(["check", "--gin_file", MICRO_GIN])
    out = capsys.readouterr().out
    total = int(re.search(r"^parameters: ([\d,]+)", out, re.M).group(1).replace(",", ""))
    parts = dict(re.findall(r"^  (encoder|video \w+) +([\d,]+)$", out, re.M))
    assert {"encoder", "video tokenizer", "video decoder"} <= set(parts)
    assert total == sum(int(count.replace(",", "")) for count in parts.values())
    assert re.search(r"^  video  2 / 6 / 8$", out, re.M)  # 8 tubelets at 75 %: 2 visible, 6 predicted
    assert "a batch of 4 on cpu" in out and "peak resident memory of the whole process" in out
    assert list(tmp_path.iterdir()) == []


def test_check_counts_the_parameters_of_every_part_once(capsys):
    main(["check", "--gin_file", QUICKSTART_MICRO[0], "--gin_file", QUICKSTART_MICRO[1]])
    out = capsys.readouterr().out
    model = gin.query_parameter("pretrain.model").scoped_configurable_fn()
    total = int(re.search(r"^parameters: ([\d,]+)", out, re.M).group(1).replace(",", ""))
    assert total == sum(p.numel() for p in model.parameters())
    for name in ("video", "audio", "imu", "text"):
        assert re.search(rf"^  {name} tokenizer +[\d,]+$", out, re.M) and re.search(rf"^  {name} decoder +[\d,]+$",
                                                                                     out, re.M)
        assert re.search(rf"^  {name} +\d+ / \d+ / \d+$", out, re.M)


def test_a_mistake_is_one_message_exit_1_and_nothing_written(tmp_path):
    result = subprocess.run([sys.executable, "-m", "mmmae", "check", "--gin_file", MICRO_GIN,
                             "--gin_param", "video/RegionGuidedMasking.patch = 8",
                             "--gin_param", "video/RegionGuidedMasking.key = 'face_parsing'",
                             "--gin_param", "video/Modality.masker = @video/RegionGuidedMasking()"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 1
    assert result.stderr.startswith("mmmae check: one training step on the first batch failed: modality 'video'")
    assert "face_parsing" in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_model_that_cannot_be_built_names_the_binding(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["check", "--gin_file", MICRO_GIN, "--gin_param", "video/TubeMasking.ratio = 1.0"])
    assert stop.value.code == ("mmmae check: invalid gin config:\nTubeMasking.ratio = 1.0: a masking ratio must lie "
                               "strictly between 0 and 1\n  In --gin_param 1: video/TubeMasking.ratio = 1.0")


def test_the_step_leaves_weights_buffers_gradients_and_random_state_as_they_were():
    parse_config(QUICKSTART_MICRO)
    model = gin.query_parameter("pretrain.model").scoped_configurable_fn()
    dataset = gin.query_parameter("pretrain.dataset").scoped_configurable_fn()
    before = {name: value.clone() for name, value in model.state_dict().items()}
    assert any(name.endswith("standardizers.video.weight") for name in before)  # statistics a step would move
    rng = torch.get_rng_state()
    report = dry_step(model, dataset, 4)
    assert report.batch_size == 4 and set(report.tokens) == {"video", "audio", "imu", "text"}
    assert all(torch.equal(before[name], value) for name, value in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(torch.get_rng_state(), rng)


def test_the_check_before_training_does_not_change_the_run(tmp_path, monkeypatch):
    parse_config(QUICKSTART_MICRO)
    pretrain(output_dir=str(tmp_path / "checked"))
    monkeypatch.setattr(mmmae.train, "dry_step", lambda *args: None)
    parse_config(QUICKSTART_MICRO)
    pretrain(output_dir=str(tmp_path / "unchecked"))
    checked, unchecked = load_file(str(tmp_path / "checked" / "model.safetensors")), \
        load_file(str(tmp_path / "unchecked" / "model.safetensors"))
    assert all(torch.equal(checked[name], unchecked[name]) for name in unchecked)


class Stepped(Exception):
    """Stops `pretrain` at its check step, once the initial model is captured."""


def test_check_steps_the_runs_initial_model(tmp_path, monkeypatch):
    """`mmmae check` builds what `pretrain` starts from (parameters and running statistics), at a seed not 0."""
    models = {}

    def capture(into: str, stop: bool):
        def step(model, *args):
            models[into] = {name: value.clone() for name, value in model.state_dict().items()}
            if stop:
                raise Stepped
            return dry_step(model, *args)
        return step

    monkeypatch.setattr(mmmae.train, "dry_step", capture("run", stop=True))
    monkeypatch.setattr(mmmae.check, "dry_step", capture("check", stop=False))
    parse_config(QUICKSTART_MICRO, ["pretrain.seed = 3"])
    with pytest.raises(Stepped):
        pretrain(output_dir=str(tmp_path / "run"))
    parse_config(QUICKSTART_MICRO, ["pretrain.seed = 3"])
    check_recipe()
    run, check = models["run"], models["check"]
    assert run.keys() == check.keys() and all(torch.equal(run[name], check[name]) for name in run)


def test_train_fails_on_a_step_mistake_before_the_run_directory_exists(tmp_path):
    """Contrastive.in_dim that is not the encoder's width tokenizes and masks, and fails only in the forward."""
    parse_config(QUICKSTART_MICRO, ["Contrastive.in_dim = 16"])
    with pytest.raises(ConfigError, match="one training step on the first batch failed: RuntimeError: "):
        pretrain(output_dir=str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("binding, message", [
    ("pretrain.batch_size = 0", "invalid gin config:\npretrain.batch_size = 0: must be a whole number of at least 1\n"
                                "  In --gin_param 1: pretrain.batch_size = 0"),  # train's own setting checks
    ("train/MovingDigits.num_samples = 3", "pretrain.dataset has 3 samples, not one full batch of "
                                           "pretrain.batch_size = 4"),
])
def test_a_batch_the_dataset_cannot_give_is_named(binding, message):
    with pytest.raises(SystemExit) as stop:
        main(["check", "--gin_file", MICRO_GIN, "--gin_param", binding])
    assert stop.value.code == f"mmmae check: {message}"


def test_a_masker_missing_its_side_channel_names_it_and_the_gin_line(tmp_path):
    recipe = tmp_path / "region.gin"
    recipe.write_text(f"include '{MICRO_GIN}'\nvideo/RegionGuidedMasking.patch = 8\n"
                      "video/Modality.masker = @video/RegionGuidedMasking()\n")
    parse_config([str(recipe)], ["video/RegionGuidedMasking.key = 'face_parsing'"])
    data = MovingDigits(split="train", num_samples=4, frames=4, size=16, digit_size=8)
    with pytest.raises(ValueError) as error:
        dry_step(MaskedAutoencoder(), data, 2)
    message = str(error.value)
    assert message.startswith("one training step on the first batch failed: modality 'video': ")
    assert "batch['face_parsing']" in message
    assert f'masker chosen in file "{recipe}", line 3: video/Modality.masker = @video/RegionGuidedMasking()' in message


def test_a_ratio_leaving_nothing_visible_names_the_binding():
    parse_config([MICRO_GIN], ["video/RandomMasking.ratio = 0.9", "video/Modality.masker = @video/RandomMasking()"])
    data = MovingDigits(split="train", num_samples=4, frames=4, size=16, digit_size=8)
    with pytest.raises(ValueError, match=r"modality 'video': RandomMasking.ratio = 0.9 masks 8 of 8 tokens.* \(masker "
                                         r"chosen in --gin_param 2: video/Modality.masker = "
                                         r"@video/RandomMasking\(\)\)"):
        dry_step(MaskedAutoencoder(), data, 2)
