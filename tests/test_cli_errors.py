"""`mmmae train` and `mmmae eval` refusals: one message, exit status 1, nothing written."""

import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from mmmae.cli import main
from tests.conftest import MICRO_GIN
from tests.refusal import refusal

TRAIN = ["train", "--gin_file", MICRO_GIN, "--gin_param", "pretrain.num_workers = 0", "--gin_param",
         "pretrain.steps = 2"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished two-step micro run."""
    run = tmp_path_factory.mktemp("trained") / "run"
    main([*TRAIN, "--output_dir", str(run)])
    return run


def contents(run) -> dict:
    return {path: path.stat().st_mtime_ns for path in run.rglob("*")}


def test_training_into_an_existing_run_is_refused_before_anything_is_built(trained, capsys):
    before = contents(trained)
    # A ratio gin cannot build with: the refusal must come first, so nothing was built.
    message = refusal([*TRAIN, "--gin_param", "video/TubeMasking.ratio = 1.5", "--output_dir", str(trained)], capsys)
    assert message == (f"mmmae train: {trained} already holds a run (latest checkpoint step_00000002); pass --resume "
                       "to continue it or choose another --output_dir")
    assert contents(trained) == before


def test_resume_with_another_config_is_one_message_with_the_difference(trained, capsys):
    before = contents(trained)
    message = refusal([*TRAIN, "--gin_param", "pretrain.base_lr = 0.1", "--output_dir", str(trained), "--resume"],
                      capsys)
    assert message.startswith(f"mmmae train: --resume refused: {trained} was made with a different config:\n")
    assert "\n-pretrain.base_lr = 0.0015\n+pretrain.base_lr = 0.1\n" in message
    assert contents(trained) == before


def test_resume_to_fewer_steps_than_the_checkpoint_is_refused(trained, capsys):
    before = contents(trained)
    message = refusal([*TRAIN, "--gin_param", "pretrain.steps = 1", "--output_dir", str(trained), "--resume"], capsys)
    assert message == (f"mmmae train: --resume refused: pretrain.steps = 1, but {trained}'s latest checkpoint is at "
                       "step 2; give at least 2 steps (more extends the run)")
    assert contents(trained) == before


def test_init_from_a_missing_source_names_the_binding_and_writes_nothing(tmp_path, capsys):
    run, missing = tmp_path / "run", tmp_path / "nowhere" / "run"
    message = refusal([*TRAIN, "--init_from", str(missing), "--output_dir", str(run)], capsys)
    assert message.startswith(f"mmmae train: invalid gin config:\npretrain.init_from = '{missing}': '{missing}' is "
                              "neither a directory nor a model-zoo name (known: ")
    assert message.endswith(f"\n  In --gin_param 3: pretrain.init_from = '{missing}'")
    assert not run.exists()


def test_init_from_a_model_of_another_kind_is_refused(trained, tmp_path, capsys):
    other = tmp_path / "other"
    shutil.copytree(trained, other)
    weights = other / "model.safetensors"
    save_file({"unrelated.weight": torch.zeros(2)}, str(weights))
    run = tmp_path / "run"
    message = refusal([*TRAIN, "--init_from", str(other), "--output_dir", str(run)], capsys)
    assert "no weight matches the model by name and shape (the source has unrelated.weight, ...;" in message
    assert not run.exists()


def test_eval_on_weights_of_other_widths_lists_each_key_with_both_shapes(trained, tmp_path, capsys):
    other = tmp_path / "other"
    shutil.copytree(trained, other)
    config = other / "config.gin"
    config.write_text(config.read_text().replace("ENC_DIM = 32", "ENC_DIM = 48"))
    message = refusal(["eval", "--model", str(other)], capsys)
    assert message.startswith(f"mmmae eval: {other / 'model.safetensors'} does not match the model its config builds")
    assert "encoder.norm.weight (32,) in the file, (48,) in the model" in message
    assert "encoder.blocks.0.attn.qkv.weight (96, 32) in the file, (144, 48) in the model" in message


def test_a_config_mistake_exits_1_with_one_message_and_no_traceback(tmp_path):
    run = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "mmmae", "train", "--gin_file", MICRO_GIN, "--gin_param",
                           "vdieo/TubeMasking.ratio = 0.1", "--output_dir", str(run)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == ("mmmae train: invalid gin config:\nno configurable is ever called in scope 'vdieo', so gin "
                           "would ignore the bindings of 'vdieo/TubeMasking'; did you mean 'video/TubeMasking'? "
                           "(scopes in use: probe_test, probe_train, train, video)\n"
                           "  In --gin_param 1: vdieo/TubeMasking.ratio = 0.1\n")
    assert not run.exists()


def test_a_chain_mistake_names_the_stage_and_writes_nothing(tmp_path, capsys):
    chain = tmp_path / "chain.gin"
    chain.write_text("chain.stages = [@a/Stage()]\na/Stage.name = 'a'\n"
                     f"a/Stage.gin_files = ['{MICRO_GIN}']\na/Stage.init_from = '${{later}}'\n")
    message = refusal(["chain", "--gin_file", str(chain), "--output_dir", str(tmp_path / "out")], capsys)
    assert message == ("mmmae chain: stage 'a': Stage.init_from names ${later}, which is not an earlier stage "
                       "(earlier: none: it is the first stage)")
    assert not (tmp_path / "out").exists()
