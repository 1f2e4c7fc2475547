"""pretrain's settings out of range stop `mmmae train` before anything is built or written."""

import pytest

from mmmae.config import ConfigError, parse_config
from mmmae.train_settings import check_settings
from tests.conftest import MICRO_GIN
from tests.refusal import refusal


@pytest.mark.parametrize("binding, allowed", [
    ("pretrain.steps = 'many'", "must be a whole number of at least 1"),
    ("pretrain.steps = -5", "must be a whole number of at least 1"),
    ("pretrain.batch_size = 0", "must be a whole number of at least 1"),
    ("pretrain.log_every = 0", "must be a whole number of at least 1"),
    ("pretrain.save_every = 2.5", "must be a whole number of at least 1"),
    ("pretrain.warmup_steps = -1", "must be a whole number of at least 0"),
    ("pretrain.base_lr = 0", "must be a number above 0"),
    ("pretrain.min_lr_ratio = 2.0", "must be a number from 0 to 1"),
    ("pretrain.clip_grad = -1.0", "must be None (no clipping) or a number above 0"),
    ("pretrain.betas = (0.9,)", "must be two numbers"),
    ("pretrain.mixed_precision = 'fp32'", "must be one of 'no', 'fp16', 'bf16', 'fp8'"),
])
def test_a_setting_out_of_range_names_the_binding_its_value_and_what_is_allowed(binding, allowed, tmp_path, capsys):
    run = tmp_path / "run"
    message = refusal(["train", "--gin_file", MICRO_GIN, "--gin_param", "pretrain.num_workers = 0",
                       "--gin_param", binding, "--output_dir", str(run)], capsys)
    name, value = (part.strip() for part in binding.split("="))
    assert message.startswith("mmmae train: invalid gin config:\n")
    assert f"{name} = " in message and allowed in message
    assert f"In --gin_param 2: {binding}" in message
    assert not run.exists()


def test_the_location_is_the_binding_that_wins():
    parse_config([MICRO_GIN], ["pretrain.steps = True"])  # micro.gin binds pretrain.steps = 6 first
    with pytest.raises(ConfigError, match=r"pretrain.steps = True: must be a whole number") as error:
        check_settings({"steps": True})
    assert str(error.value).endswith("In --gin_param 1: pretrain.steps = True") and "micro.gin" not in str(error.value)


def test_the_edges_of_each_range_pass_and_just_beyond_is_refused():
    edges = {"steps": 1, "warmup_steps": 0, "base_lr": 1e-3, "betas": [0.9, 0.95], "clip_grad": None,
             "mixed_precision": "bf16", "min_lr_ratio": 0.0}
    parse_config([MICRO_GIN])
    assert check_settings(edges) is None
    beyond = {"steps": 0, "warmup_steps": -1, "base_lr": 0.0, "betas": [0.9, 1.0], "clip_grad": 0.0,
              "mixed_precision": "bf17", "min_lr_ratio": -0.1}
    for name, value in beyond.items():
        with pytest.raises(ConfigError, match=rf"pretrain\.{name} = "):
            check_settings({**edges, name: value})
