"""FSDP on two CPU processes (gloo): sharded for real, the same training as DDP and one process,
exact resume from sharded checkpoints, consolidated weights for single-process use.

Runs are launched with tools/accelerate/fsdp_full_shard.yaml (mmmae/sharding.py applies
fully_shard on CPU, where Accelerate's plugin does not engage) through tests/fsdp_worker.py.
The agreement tolerance is test_distributed's (its docstring derives it): FSDP's reduce-scatter
and DDP's all-reduce sum the same two per-rank gradients, so the runs differ by rounding only,
and the per-tensor relative difference is measured in units of how far the weights moved.
"""

import json
import math
import os
import pickle
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from mmmae.cli import main
from mmmae.config import parse_config
from mmmae.model import MaskedAutoencoder
from mmmae.sharded_checkpoint import MODEL_SHARDS, consolidated_state
from mmmae.train import pretrain
from mmmae.zoo.pretrained import from_pretrained
from tests.conftest import MICRO_GIN
from tests.refusal import refusal
from tests.test_distributed import ROUNDING_TOLERANCE, relative_differences
from tests.test_train import MICRO_OVERRIDES

PARAMS = ["pretrain.batch_size = 2", "pretrain.base_lr = 0.1", "pretrain.log_every = 1"]
FSDP_CONFIG = "tools/accelerate/fsdp_full_shard.yaml"
CHECKPOINT = "checkpoints/step_00000006"


def launch(run_dir, config: str | None, resume: bool = False, gin_files: tuple[str, ...] = (MICRO_GIN,),
           params: list[str] = PARAMS, **env) -> None:
    """`mmmae train` of the micro recipe (or `gin_files` with `params`) on 2 CPU processes: FSDP with
    `config`, DDP without."""
    setup = ["--config_file", config] if config else ["--multi_gpu", "--dynamo_backend", "no"]
    command = [sys.executable, "-m", "accelerate.commands.launch", *setup, "--num_processes", "2",
               "--num_machines", "1", "--main_process_port", "0", "--mixed_precision", "no", "-m", "tests.fsdp_worker",
               "train",
               *[a for f in gin_files for a in ("--gin_file", f)], *[a for p in params for a in ("--gin_param", p)],
               "--output_dir", str(run_dir),
               *(["--resume"] if resume else [])]
    result = subprocess.run(command, env=dict(os.environ, ACCELERATE_USE_CPU="1", OMP_NUM_THREADS="1", **env),
                            capture_output=True, text=True, timeout=300)
    if "FSDP_KILL_AT" not in env:
        assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The micro recipe's 6 steps at a global batch of 4: FSDP (probed), DDP, one process, and FSDP
    killed after step 5 (its last checkpoint at step 3), then resumed."""
    root = tmp_path_factory.mktemp("fsdp")
    launch(root / "fsdp", FSDP_CONFIG, FSDP_PROBE=str(root / "probe.json"))
    launch(root / "ddp", None)
    launch(root / "resumed", FSDP_CONFIG, FSDP_KILL_AT="5")
    assert (root / "resumed" / "checkpoints" / "latest").read_text() == "step_00000003"
    launch(root / "resumed", FSDP_CONFIG, resume=True)
    parse_config([MICRO_GIN], [*PARAMS[1:], "pretrain.batch_size = 4"])
    pretrain(output_dir=str(root / "one"))
    return root


def weights(run_dir) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "model.safetensors"))


def losses(run_dir) -> list[float]:
    return [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_fsdp_shards_every_parameter_over_the_two_processes(runs):
    probe = json.loads((runs / "probe.json").read_text())
    assert probe["sharded"] and probe["all_dtensor"]
    # fully_shard splits dim 0 into 2 chunks, rank 0 taking the larger: its exact share of the model.
    full = weights(runs / "one")
    held = sum(math.ceil(v.shape[0] / 2) * v[0].numel() for v in full.values() if v.dim())
    assert probe["local_share"] == pytest.approx(held / sum(v.numel() for v in full.values() if v.dim()), rel=1e-12)


def test_fsdp_run_agrees_with_ddp_and_with_one_process(runs):
    moved_from = load_file(str(runs / "one" / "checkpoints" / "step_00000003" / "model.safetensors"))
    fsdp = weights(runs / "fsdp")
    for other in ("ddp", "one"):
        differences = relative_differences(fsdp, weights(runs / other), moved_from)
        worst = max(differences, key=differences.get)
        assert differences[worst] < ROUNDING_TOLERANCE, (other, worst, differences[worst])


def test_fsdp_kill_and_resume_ends_bitwise_equal(runs):
    expected, resumed = weights(runs / "fsdp"), weights(runs / "resumed")
    assert expected.keys() == resumed.keys()
    assert all(torch.equal(expected[k], resumed[k]) for k in expected)
    assert losses(runs / "resumed") == losses(runs / "fsdp")


def test_consolidated_weights_load_strict_and_equal_the_sharded_checkpoint(runs):
    parse_config([MICRO_GIN], PARAMS)
    model = MaskedAutoencoder()
    final = weights(runs / "fsdp")
    model.load_state_dict(final, strict=True)
    sharded = consolidated_state(runs / "fsdp" / CHECKPOINT / MODEL_SHARDS)
    assert sharded.keys() == final.keys()
    assert all(torch.equal(sharded[k], final[k]) for k in final)


def test_a_sharded_checkpoint_folder_exports_and_loads(runs, tmp_path):
    main(["export", "--src", str(runs / "fsdp" / CHECKPOINT), "--dst", str(tmp_path / "exported")])
    final = weights(runs / "fsdp")
    for source in (tmp_path / "exported", runs / "fsdp" / CHECKPOINT):
        state = from_pretrained(source).state_dict()
        assert all(torch.equal(state[k], final[k]) for k in final)


def test_resuming_a_sharded_run_without_fsdp_is_refused(runs, tmp_path):
    shutil.copytree(runs / "fsdp", tmp_path / "run")
    parse_config([MICRO_GIN], PARAMS + ["pretrain.steps = 8"])
    with pytest.raises(ValueError, match="with FSDP.*accelerate config it was launched with"):
        pretrain(output_dir=str(tmp_path / "run"), resume=True)


def test_resuming_a_sharded_run_without_fsdp_through_the_cli_is_one_message(runs, tmp_path, capsys):
    shutil.copytree(runs / "fsdp", tmp_path / "run")
    message = refusal(["train", "--gin_file", MICRO_GIN, *[a for p in [*PARAMS, "pretrain.steps = 8"]
                                                             for a in ("--gin_param", p)],
                       "--output_dir", str(tmp_path / "run"), "--resume"], capsys)
    assert message.startswith("mmmae train: ") and "with FSDP" in message and "accelerate config" in message


def test_fsdp_bf16_trains_audio_and_video_from_the_batch_as_loaded(tmp_path):
    """bf16 parameters, the inputs not cast: the audio fbank (CPU FFT has no bf16) and the pixel
    targets are computed in fp32, and each tokenizer casts its projection's input."""
    launch(tmp_path / "run", FSDP_CONFIG, gin_files=("recipes/audiovisual_mae.gin", str(MICRO_OVERRIDES)),
           params=["pretrain.batch_size = 2", "pretrain.mixed_precision = 'bf16'", "pretrain.log_every = 1"])
    assert all(math.isfinite(loss) for loss in losses(tmp_path / "run")) and len(losses(tmp_path / "run")) == 2


class _Planted:
    def __reduce__(self):
        return (os.system, ("echo planted",))


def test_a_checkpoint_index_naming_other_objects_is_refused_unread(runs, tmp_path):
    shards = tmp_path / MODEL_SHARDS
    shutil.copytree(runs / "fsdp" / CHECKPOINT / MODEL_SHARDS, shards)
    (shards / ".metadata").write_bytes(pickle.dumps(_Planted()))
    with pytest.raises(ValueError, match="cannot read the sharded weights"):
        consolidated_state(shards)
