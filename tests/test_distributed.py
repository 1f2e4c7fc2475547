"""Two CPU processes through `accelerate launch` train the same model as one process.

How the comparison holds on any CPU: the 2-process and 1-process runs differ only in the order
of float32 sums (each rank reduces half the batch, then gradients are averaged), which oneDNN
also reorders differently on AVX2, AVX-512 and AMX machines. For a weight whose gradient is
well above rounding, Adam's update g / sqrt(v) inherits the gradient's relative error, of the
order sqrt(n) * 2**-24 ~ 1e-5 for the reductions of this model (n <= 1e6 terms): a tensor's
weights differ between the runs by ~1e-5 of what they moved. A data-parallel bug (ranks that
see the same data, gradients not averaged, lr not scaled to the global batch) changes every
update by a fraction of order one. The threshold, 1e-3 of the movement per tensor (relative
L2), sits two orders above the first and two below the second, and the test checks the second
half of that claim with a control run that sees half the batch.

One kind of weight is left out: the key third of each fused qkv bias. It adds q . b_k to
every logit of a query alike, which softmax ignores, so its true gradient is exactly zero and
what it receives is rounding noise, which Adam normalises to steps of the size of the learning
rate in directions that depend on the CPU. It changes no output of the model.
"""

import os
import subprocess
import sys

import torch
from safetensors.torch import load_file

from mmmae.config import parse_config
from mmmae.train import pretrain
from tests.conftest import MICRO_GIN

ROUNDING_TOLERANCE = 1e-3  # relative L2 difference per tensor; see the module docstring


def without_key_bias(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The weights with the key third of every fused qkv bias removed (its gradient is zero)."""
    kept = {}
    for name, value in weights.items():
        if name.endswith("attn.qkv.bias"):
            query, _, value_part = value.chunk(3)
            value = torch.cat([query, value_part])
        kept[name] = value
    return kept


def relative_differences(a: dict, b: dict, moved_from: dict) -> dict[str, float]:
    """Per tensor: ||a - b|| / ||b - moved_from|| (how far a is from b, in units of b's movement)."""
    a, b, moved_from = without_key_bias(a), without_key_bias(b), without_key_bias(moved_from)
    return {k: ((a[k] - b[k]).norm() / (b[k] - moved_from[k]).norm()).item() for k in b}


def test_key_bias_gets_no_gradient_beyond_rounding():
    """The premise of leaving the key bias out: its gradient vanishes up to rounding."""
    from mmmae.nn.blocks import Attention

    torch.manual_seed(0)
    attention = Attention(dim=32, heads=2)
    x = torch.randn(3, 10, 32)
    attention(x).square().sum().backward()
    query_grad, key_grad, value_grad = attention.qkv.bias.grad.chunk(3)
    scale = value_grad.abs().max()
    assert scale > 0
    assert key_grad.abs().max() < 1e-5 * scale  # exactly zero in exact arithmetic
    assert query_grad.abs().max() > 1e-3 * scale


def test_two_process_cpu_run_agrees_with_one_process(tmp_path):
    two, one, half = tmp_path / "two", tmp_path / "one", tmp_path / "half"
    env = dict(os.environ, ACCELERATE_USE_CPU="1", OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "-m", "mmmae", "train", "--gin_file", MICRO_GIN,
               "--gin_param", "pretrain.batch_size = 2", "--gin_param", "pretrain.base_lr = 0.1",
               "--output_dir", str(two)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "global_batch" not in result.stderr
    assert '"global_batch": 4' in (two / "summary.json").read_text()

    parse_config([MICRO_GIN], ["pretrain.batch_size = 4", "pretrain.base_lr = 0.1"])
    pretrain(output_dir=str(one))
    # The control: one process seeing only the first half of each batch at the same lr, as a rank
    # would without gradient averaging.
    parse_config([MICRO_GIN], ["pretrain.batch_size = 2", "pretrain.base_lr = 0.2"])
    pretrain(output_dir=str(half))

    a, b = load_file(str(two / "model.safetensors")), load_file(str(one / "model.safetensors"))
    assert a.keys() == b.keys()
    at_step_3 = load_file(str(one / "checkpoints" / "step_00000003" / "model.safetensors"))
    differences = relative_differences(a, b, at_step_3)
    worst = max(differences, key=differences.get)
    assert differences[worst] < ROUNDING_TOLERANCE, (worst, differences[worst])
    control = relative_differences(load_file(str(half / "model.safetensors")), b, at_step_3)
    assert min(control.values()) > 10 * ROUNDING_TOLERANCE, min(control.items(), key=lambda kv: kv[1])
