"""Two CPU processes through `accelerate launch` train the same model as one process."""

import os
import subprocess
import sys

import torch
from safetensors.torch import load_file

from mmmae.config import parse_config
from mmmae.train import pretrain
from tests.conftest import MICRO_GIN


def test_two_process_cpu_run_agrees_with_one_process(tmp_path):
    two, one = tmp_path / "two", tmp_path / "one"
    env = dict(os.environ, ACCELERATE_USE_CPU="1", OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "-m", "mmmae", "train", "--gin_file", MICRO_GIN, "--gin_param", "pretrain.batch_size = 2", "--gin_param", "pretrain.base_lr = 0.1",
               "--output_dir", str(two)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "global_batch" not in result.stderr
    assert '"global_batch": 4' in (two / "summary.json").read_text()

    parse_config([MICRO_GIN], ["pretrain.batch_size = 4", "pretrain.base_lr = 0.1"])
    pretrain(output_dir=str(one))
    a, b = load_file(str(two / "model.safetensors")), load_file(str(one / "model.safetensors"))
    assert a.keys() == b.keys()
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst < 1e-4, worst
    at_step_3 = load_file(str(one / "checkpoints" / "step_00000003" / "model.safetensors"))
    moved = max((a[k] - at_step_3[k]).abs().max().item() for k in a)
    assert moved > 100 * worst, f"weights moved {moved} from step 3 to 6: too little for the comparison to mean anything"
