"""FSDP2 for the trainer: Accelerate's plugin on GPUs, torch's `fully_shard` on CPU processes.

`accelerate launch --config_file tools/accelerate/fsdp_full_shard.yaml` (or fsdp_hybrid_shard.yaml)
sets ACCELERATE_USE_FSDP and the FSDP_* variables. On GPUs the Accelerator's FSDP plugin
(`fsdp_plugin`) shards the model in `prepare`: mmmae's transformer blocks are the wrap unit, the
root module takes the rest, and `pretrain.mixed_precision = 'bf16'` keeps bf16 parameters in
compute with gradients reduced in fp32. Accelerate 1.16 does not engage its plugin on CPU (it
runs MULTI_CPU with plain parameters), so `shard_on_cpu` applies `fully_shard` itself with the
same variables and policy, over gloo: a CPU run launched with fsdp_full_shard.yaml shards for
real (hybrid sharding is GPU only: Accelerate refuses its parallelism_config on CPU processes).
"""

import copy
import os

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

WRAP_VARIABLE = "FSDP_TRANSFORMER_CLS_TO_WRAP"
DEFAULT_WRAP = "Block,CrossSelfBlock"  # mmmae.nn.blocks.Block, mmmae.nn.cross_decoder.CrossSelfBlock


def fsdp_requested() -> bool:
    """Whether the launch asked for FSDP (`distributed_type: FSDP` in the accelerate config)."""
    return os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"


def precision_policy(mixed_precision: str) -> MixedPrecisionPolicy | None:
    """For 'bf16': bf16 parameters in compute, gradients reduced in fp32, and the inputs not cast
    (cast_forward_inputs=False): the batch reaches the tokenizers as the loader made it, as under
    DDP's autocast (fbank's FFT needs fp32, targets come from unrounded pixels), and each tokenizer
    casts its embedding input to its projection's dtype after the targets. None (full precision) otherwise."""
    if mixed_precision != "bf16":
        return None
    return MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32, cast_forward_inputs=False)


def fsdp_plugin(mixed_precision: str) -> FullyShardedDataParallelPlugin | None:
    """The Accelerator's FSDP plugin when the launch asked for FSDP (the rest from its FSDP_* variables),
    with shard_on_cpu's precision policy."""
    if not fsdp_requested():
        return None
    return FullyShardedDataParallelPlugin(mixed_precision_policy=precision_policy(mixed_precision))


def shard_on_cpu(accelerator: Accelerator, model: torch.nn.Module, mixed_precision: str) -> bool:
    """fully_shard every block named in FSDP_TRANSFORMER_CLS_TO_WRAP, then the root, when FSDP was asked
    for and Accelerate runs CPU processes without it (in place); returns whether it sharded."""
    if not fsdp_requested() or accelerator.distributed_type != DistributedType.MULTI_CPU:
        return False
    names = {name.strip() for name in os.environ.get(WRAP_VARIABLE, DEFAULT_WRAP).split(",") if name.strip()}
    units = [m for m in model.modules() if type(m).__name__ in names]
    if not units:
        raise ValueError(f"{WRAP_VARIABLE} = {','.join(sorted(names))!r} (fsdp_transformer_layer_cls_to_wrap in the "
                         f"accelerate config) names no module class of this model; use {DEFAULT_WRAP!r}")
    settings = {"mp_policy": precision_policy(mixed_precision) or MixedPrecisionPolicy(),
                "reshard_after_forward": os.environ.get("FSDP_RESHARD_AFTER_FORWARD", "true").lower() == "true"}
    for unit in units:
        fully_shard(unit, **settings)
    fully_shard(model, **settings)
    return True


def gathered_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A sharded model's whole state dict, on the main process (collective: every process calls it;
    the others get an empty dict)."""
    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def trained_copy(initial: torch.nn.Module | None, weights: dict[str, torch.Tensor], device: torch.device
                 ) -> torch.nn.Module | dict[str, torch.Tensor]:
    """For the final evaluations, a copy of the unsharded initial model holding `weights` (strict) on
    `device`; the weights alone when the run kept no initial model (it has no evaluations)."""
    if initial is None:
        return weights
    trained = copy.deepcopy(initial)
    trained.load_state_dict(weights, strict=True)
    return trained.to(device)
