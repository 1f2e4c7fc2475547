"""timm-style ViT blocks (VideoMAE, MAE, MAE-ST after q/k/v fusion) -> mmmae `Block` keys.

Source block under prefix `src` (e.g. "encoder.blocks.3."):
    norm1, attn.qkv.weight (3D, D), qkv bias as `attn.qkv.bias` (3D) or VideoMAE's
    `attn.q_bias` + `attn.v_bias` (D each, key bias fixed at 0) or none, attn.proj, norm2,
    mlp.fc1, mlp.fc2 (each .weight and .bias).
mmmae Block under `dst`: norm1, attn.qkv (bias always present), attn.proj, norm2, mlp.0, mlp.2.
"""

import torch

RENAMED = {"norm1": "norm1", "attn.proj": "attn.proj", "norm2": "norm2", "mlp.fc1": "mlp.0", "mlp.fc2": "mlp.2"}
QKV_BIASES = ("qkv", "qv", "none")


def qkv_bias_style(state: dict, prefix: str) -> str:
    """How the blocks under `prefix` store the qkv bias: 'qkv' (fused), 'qv' (VideoMAE q_bias /
    v_bias) or 'none', read off the first block."""
    if f"{prefix}0.attn.qkv.bias" in state:
        return "qkv"
    if f"{prefix}0.attn.q_bias" in state:
        return "qv"
    return "none"


def block_source_keys(src: str, bias: str) -> list[str]:
    """The keys a source block under `src` has with qkv bias style `bias`."""
    keys = [f"{src}{name}.{p}" for name in RENAMED for p in ("weight", "bias")] + [f"{src}attn.qkv.weight"]
    return keys + {"qkv": [f"{src}attn.qkv.bias"], "qv": [f"{src}attn.q_bias", f"{src}attn.v_bias"], "none": []}[bias]


def depth(state: dict, prefix: str) -> int:
    """How many blocks `prefix` + "{i}." numbers (1 + the largest i; 0 when there are none)."""
    numbers = [int(k[len(prefix):].split(".", 1)[0]) for k in state
               if k.startswith(prefix) and k[len(prefix):].split(".", 1)[0].isdigit()]
    return max(numbers, default=-1) + 1


def fused_qkv_bias(state: dict, src: str, bias: str) -> torch.Tensor:
    """The (3D,) qkv bias of the block under `src`: fused as is, [q, 0, v] for 'qv', zeros for 'none'."""
    weight = state[f"{src}attn.qkv.weight"]
    if bias == "qkv":
        return state[f"{src}attn.qkv.bias"]
    if bias == "qv":
        q, v = state[f"{src}attn.q_bias"], state[f"{src}attn.v_bias"]
        return torch.cat([q, torch.zeros_like(q), v])
    return weight.new_zeros(weight.shape[0])


def convert_block(state: dict, src: str, dst: str, bias: str) -> dict[str, torch.Tensor]:
    """mmmae Block keys under `dst` from the timm-style block under `src` (see the module docstring)."""
    out = {f"{dst}{new}.{p}": state[f"{src}{old}.{p}"] for old, new in RENAMED.items() for p in ("weight", "bias")}
    out[f"{dst}attn.qkv.weight"] = state[f"{src}attn.qkv.weight"]
    out[f"{dst}attn.qkv.bias"] = fused_qkv_bias(state, src, bias)
    return out


def convert_blocks(state: dict, src: str, dst: str, count: int, bias: str) -> dict[str, torch.Tensor]:
    """Blocks src{i}. -> dst{i}. for i < count."""
    return {k: v for i in range(count) for k, v in convert_block(state, f"{src}{i}.", f"{dst}{i}.", bias).items()}


def blocks_source_keys(src: str, count: int, bias: str) -> list[str]:
    return [k for i in range(count) for k in block_source_keys(f"{src}{i}.", bias)]
