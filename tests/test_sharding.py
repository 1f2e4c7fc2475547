"""mmmae.sharding's choices without processes: when FSDP is asked for, the plugin's precision policy,
the wrap classes; the sharding itself runs in tests/test_fsdp.py on 2 processes."""

from types import SimpleNamespace

import pytest
import torch
from accelerate.utils import DistributedType

from mmmae.nn.blocks import Transformer
from mmmae.sharding import fsdp_plugin, shard_on_cpu

CPU_PROCESSES = SimpleNamespace(distributed_type=DistributedType.MULTI_CPU)


def test_without_an_fsdp_launch_nothing_is_sharded(monkeypatch):
    monkeypatch.delenv("ACCELERATE_USE_FSDP", raising=False)
    model = Transformer(8, 1, 2)
    assert fsdp_plugin("bf16") is None
    assert not shard_on_cpu(CPU_PROCESSES, model, "no")
    assert all(type(p) is torch.nn.Parameter for p in model.parameters())


def test_gpu_plugin_keeps_bf16_parameters_and_reduces_in_fp32(monkeypatch):
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setenv("FSDP_VERSION", "2")
    plugin = fsdp_plugin("bf16")
    plugin.set_mixed_precision("bf16")  # what the Accelerator does with it under --mixed_precision bf16
    policy = plugin.mixed_precision_policy
    assert (policy.param_dtype, policy.reduce_dtype) == (torch.bfloat16, torch.float32)
    assert fsdp_plugin("no").mixed_precision_policy is None


def test_wrap_classes_the_model_lacks_are_named_in_the_error(monkeypatch):
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setenv("FSDP_TRANSFORMER_CLS_TO_WRAP", "LlamaDecoderLayer")
    with pytest.raises(ValueError, match="FSDP_TRANSFORMER_CLS_TO_WRAP = 'LlamaDecoderLayer'.*names no module class"):
        shard_on_cpu(CPU_PROCESSES, Transformer(8, 1, 2), "no")
