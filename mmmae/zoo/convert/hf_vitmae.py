"""Hugging Face transformers ViTMAEForPreTraining (image MAE) -> mmmae.

Layout (transformers 5; the Hub's older names are renamed first, see HUB_NAMES):
    vit.embeddings.cls_token (1, 1, D), vit.embeddings.position_embeddings (1, 1 + N, D) (a frozen
    parameter: MAE's 2-D sin-cos table, w-coordinate half first, zero class row),
    vit.embeddings.patch_embeddings.projection.{weight (D, C, p, p), bias}
    vit.layers.{i}.{layernorm_before, attention.{q,k,v,o}_proj, layernorm_after, mlp.fc1, mlp.fc2}
    vit.layernorm, decoder.{decoder_embed (with bias), mask_token, decoder_pos_embed (1, 1 + N, Dd),
    decoder_layers.{j}.* (as the encoder's), decoder_norm, decoder_pred (p*p*C, Dd)}
Files saved by transformers 5 itself name the decoder layers `decoder.decoder_encoder.layer.{j}`
(its reverse renaming of `encoder.layer` -> `layers`); they are read too. A ViTMAEModel
checkpoint (no `vit.` prefix, no decoder) converts encoder-only.

mmmae model: one 'image' modality (option `modality`) with a FrameTokenizer (a (B, C, H, W)
image in [0, 1], standardised with ImageNet's mean/std as the ViTMAE image processor does), the
stored tables as learned tables at the checkpoint's grid (`pos_embed='learned'`, resampled for
other sizes), a class token (cls_token + its position row), HF's LayerNorm eps (1e-12) and a
MaskTokenDecoder with a bias on its embedding and the encoder's class token carried through
its blocks (`cls_token='encoded'`, position row 0 as `cls_embed`). Head counts: options
`heads` / `decoder_heads`, else config.json's num_attention_heads / decoder_num_attention_heads,
else the standard counts for standard widths (heads.py); any other width is an error.
"""

import re

import torch

from mmmae.zoo.convert.checkpoint_io import check_keys
from mmmae.zoo.convert.converted import Converted, gin_lines, option, single_modality_model
from mmmae.zoo.convert.heads import MAE_DECODER_HEADS, VIT_HEADS, head_count
from mmmae.zoo.convert.videomae import mlp_ratio, pixel_stats

LAYOUT = "HF ViTMAEForPreTraining"
CONFIG_HEADS = {"heads": "num_attention_heads", "decoder_heads": "decoder_num_attention_heads"}
HUB_NAMES = (
    (r"encoder\.layer\.", "layers."),  # also transformers 5's own saves: decoder.decoder_encoder.layer.
    (r"attention\.attention\.(query|key|value)\.", lambda m: f"attention.{m[1][0]}_proj."),
    (r"attention\.output\.dense\.", "attention.o_proj."),
    (r"intermediate\.dense\.", "mlp.fc1."),
    (r"\.output\.dense\.", ".mlp.fc2."),
)
BLOCK = {"layernorm_before": "norm1", "attention.o_proj": "attn.proj", "layernorm_after": "norm2",
         "mlp.fc1": "mlp.0", "mlp.fc2": "mlp.2"}
PARAMS = ("weight", "bias")


def current_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Hub (transformers 4) key names -> transformers 5 names; a ViTMAEModel's keys get `vit.`."""
    renamed = {}
    for key, value in state.items():
        for pattern, new in HUB_NAMES:
            key = re.sub(pattern, new, key)
        renamed[key if key.startswith(("vit.", "decoder.")) else f"vit.{key}"] = value
    return renamed


def layer_keys(src: str, qkv_bias: bool) -> list[str]:
    keys = [f"{src}{name}.{p}" for name in BLOCK for p in PARAMS]
    return keys + [f"{src}attention.{x}_proj.{p}" for x in "qkv" for p in (PARAMS if qkv_bias else PARAMS[:1])]


def convert_layer(state: dict, src: str, dst: str) -> dict[str, torch.Tensor]:
    """An HF ViTMAELayer under `src` -> an mmmae Block under `dst` (q, k, v fused; absent biases zero)."""
    out = {f"{dst}{new}.{p}": state[f"{src}{old}.{p}"] for old, new in BLOCK.items() for p in PARAMS}
    weights = [state[f"{src}attention.{x}_proj.weight"] for x in "qkv"]
    biases = [state.get(f"{src}attention.{x}_proj.bias", w.new_zeros(w.shape[0])) for x, w in zip("qkv", weights)]
    return out | {f"{dst}attn.qkv.weight": torch.cat(weights), f"{dst}attn.qkv.bias": torch.cat(biases)}


def count_layers(state: dict, prefix: str) -> int:
    numbers = {int(m[1]) for k in state if (m := re.match(rf"{re.escape(prefix)}(\d+)\.", k))}
    return max(numbers, default=-1) + 1


def image_grid(options: dict, rows: int, patch: int) -> tuple[int, int]:
    """(H', W') of the stored table's `rows` patch rows: image_size / patch from options, else square."""
    size = options.get("image_size")
    if size is None:
        side = round(rows ** 0.5)
        grid = (side, side)
    else:
        height, width = (size, size) if isinstance(size, (int, str)) else size
        grid = (int(height) // patch, int(width) // patch)
    if grid[0] * grid[1] != rows:
        raise ValueError(f"{LAYOUT}: vit.embeddings.position_embeddings has {rows} patch rows, not a "
                         f"{grid[0]}x{grid[1]} grid (image_size / patch_size {patch}); pass --option image_size=...")
    return grid


def masking_ratio(options: dict, notes: list[str]) -> float:
    """The config's mask_ratio, or MAE's 0.75 (noted) when it is not strictly between 0 and 1."""
    ratio = option(options, "mask_ratio", float, 0.75, LAYOUT)
    if not 0.0 < ratio < 1.0:
        notes.append(f"mask_ratio={ratio} cannot train a masked model: RandomMasking.ratio = 0.75 instead")
        ratio = 0.75
    return ratio


def mae_targets(options: dict, default: bool, layout: str) -> str:
    """The tokenizer's norm_target for MAE's targets: 'mae' with norm_pix_loss, else 'standardized'."""
    return "mae" if option(options, "norm_pix_loss", bool, default, layout) else "standardized"


def head_options(options: dict) -> dict:
    """{'heads', 'decoder_heads'}: the user's option, else config.json's HF name (CONFIG_HEADS)."""
    return {ours: options[ours] if options.get(ours) is not None else options.get(theirs)
            for ours, theirs in CONFIG_HEADS.items()}


def source_keys(depth: int, decoder_depth: int | None, qkv_bias: bool) -> list[str]:
    """The keys of a ViTMAEForPreTraining state dict (transformers 5 names; no decoder when None)."""
    keys = ["vit.embeddings.cls_token", "vit.embeddings.position_embeddings", "vit.layernorm.weight",
            "vit.layernorm.bias"] + [f"vit.embeddings.patch_embeddings.projection.{p}" for p in PARAMS]
    keys += [k for i in range(depth) for k in layer_keys(f"vit.layers.{i}.", qkv_bias)]
    if decoder_depth is None:
        return keys
    keys += ["decoder.mask_token", "decoder.decoder_pos_embed"] + [
        f"decoder.{m}.{p}" for m in ("decoder_embed", "decoder_norm", "decoder_pred") for p in PARAMS]
    return keys + [k for j in range(decoder_depth) for k in layer_keys(f"decoder.decoder_layers.{j}.", qkv_bias)]


def to_mmmae(state: dict, name: str, depth: int, decoder_depth: int | None) -> dict[str, torch.Tensor]:
    """Checked transformers-5 keys -> MaskedAutoencoder keys of modality `name` (see the module docstring)."""
    tok, dec = f"modalities.{name}.tokenizer.", f"modalities.{name}.decoder."
    cls = state["vit.embeddings.cls_token"]
    table = state["vit.embeddings.position_embeddings"].reshape(-1, cls.shape[-1])
    out = {f"{tok}proj.{p}": state[f"vit.embeddings.patch_embeddings.projection.{p}"] for p in PARAMS}
    out |= {f"{tok}positions.table": table[1:], f"modalities.{name}.embedding": torch.zeros_like(cls),
            f"modalities.{name}.cls_token": cls + table[:1]}
    for i in range(depth):
        out |= convert_layer(state, f"vit.layers.{i}.", f"encoder.blocks.{i}.")
    out |= {f"encoder.norm.{p}": state[f"vit.layernorm.{p}"] for p in PARAMS}
    if decoder_depth is None:
        return out
    mask_token = state["decoder.mask_token"]
    dec_table = state["decoder.decoder_pos_embed"].reshape(-1, mask_token.shape[-1])
    out |= {f"{dec}embed.{p}": state[f"decoder.decoder_embed.{p}"] for p in PARAMS}
    out |= {f"{dec}mask_token": mask_token, f"{dec}positions.table": dec_table[1:],
            f"{dec}cls_embed": dec_table[:1].reshape(mask_token.shape)}
    for j in range(decoder_depth):
        out |= convert_layer(state, f"decoder.decoder_layers.{j}.", f"{dec}transformer.blocks.{j}.")
    out |= {f"{dec}transformer.norm.{p}": state[f"decoder.decoder_norm.{p}"] for p in PARAMS}
    return out | {f"{dec}head.{p}": state[f"decoder.decoder_pred.{p}"] for p in PARAMS}


def convert(state: dict[str, torch.Tensor], options: dict) -> Converted:
    """A ViTMAEForPreTraining (or ViTMAEModel) state dict and its config.json -> mmmae."""
    state = current_names(state)
    if option(options, "hidden_act", str, "gelu", LAYOUT) != "gelu":
        raise ValueError(f"{LAYOUT}: hidden_act={options['hidden_act']!r}; mmmae's blocks use the exact GELU ('gelu')")
    for key in ("vit.embeddings.cls_token", "vit.embeddings.patch_embeddings.projection.weight",
                "vit.embeddings.position_embeddings", "vit.layers.0.mlp.fc1.weight"):
        if key not in state:
            raise ValueError(f"{LAYOUT}: no {key}; keys start {sorted(state)[:8]}")
    notes: list[str] = []
    dim, channels, patch = state["vit.embeddings.patch_embeddings.projection.weight"].shape[:3]
    grid = image_grid(options, state["vit.embeddings.position_embeddings"].shape[-2] - 1, patch)
    depth = count_layers(state, "vit.layers.")
    qkv_bias = "vit.layers.0.attention.q_proj.bias" in state
    encoder_only = not any(k.startswith("decoder.") for k in state)
    decoder_depth = None if encoder_only else count_layers(state, "decoder.decoder_layers.")
    check_keys(state, source_keys(depth, decoder_depth, qkv_bias), LAYOUT)
    eps = option(options, "layer_norm_eps", float, 1e-12, LAYOUT)
    heads = head_count(head_options(options), "heads", dim, VIT_HEADS, LAYOUT, notes)
    mean, std = pixel_stats(options, channels, LAYOUT, notes)
    name = option(options, "modality", str, "image", LAYOUT)
    ratio = mlp_ratio(dim, state["vit.layers.0.mlp.fc1.weight"].shape[0])
    if encoder_only:
        dec_dim = option(options, "decoder_hidden_size", int, 512, LAYOUT)
        dec_depth = option(options, "decoder_num_hidden_layers", int, 8, LAYOUT)
        dec_ratio = mlp_ratio(dec_dim, option(options, "decoder_intermediate_size", int, 4 * dec_dim, LAYOUT))
        notes.append(f"no decoder in the checkpoint: a fresh decoder {dec_dim} wide, {dec_depth} blocks")
    else:
        dec_dim, dec_depth = state["decoder.mask_token"].shape[-1], decoder_depth
        dec_ratio = mlp_ratio(dec_dim, state["decoder.decoder_layers.0.mlp.fc1.weight"].shape[0])
    dec_heads = head_count(head_options(options), "decoder_heads", dec_dim, MAE_DECODER_HEADS, LAYOUT, notes,
                           "fresh decoder" if encoder_only else "decoder")
    bindings = {
        "Encoder.dim": dim, "Encoder.depth": depth, "Encoder.heads": heads, "Encoder.norm_eps": eps,
        "Block.mlp_ratio": ratio,
        f"{name}/FrameTokenizer.dim": dim, f"{name}/FrameTokenizer.patch": patch,
        f"{name}/FrameTokenizer.channels": channels, f"{name}/FrameTokenizer.pos_embed": "learned",
        f"{name}/FrameTokenizer.pos_grid": grid, f"{name}/FrameTokenizer.mean": mean,
        f"{name}/FrameTokenizer.std": std,
        f"{name}/FrameTokenizer.norm_target": mae_targets(options, False, LAYOUT),
        f"{name}/MaskTokenDecoder.dim": dec_dim, f"{name}/MaskTokenDecoder.depth": dec_depth,
        f"{name}/MaskTokenDecoder.heads": dec_heads, f"{name}/MaskTokenDecoder.pos_embed": "learned",
        f"{name}/MaskTokenDecoder.pos_grid": grid, f"{name}/MaskTokenDecoder.norm_eps": eps,
        f"{name}/MaskTokenDecoder.final_norm_eps": eps, f"{name}/MaskTokenDecoder.embed_bias": True,
        f"{name}/MaskTokenDecoder.cls_token": "encoded", f"{name}/Block.mlp_ratio": dec_ratio,
        f"{name}/RandomMasking.ratio": masking_ratio(options, notes),
        f"{name}/Modality.name": name, f"{name}/Modality.cls_token": True,
        f"{name}/Reconstruction.modality": name,
    }
    lines = ([f"# Converted by `mmmae convert --from hf-vitmae` ({LAYOUT})."] + gin_lines(bindings)
             + single_modality_model(name, "FrameTokenizer", "RandomMasking"))
    if not qkv_bias:
        notes.append("qkv_bias=False: the q, k, v biases are zeros (mmmae's attention always has them)")
    metadata = {"source": LAYOUT, "encoder_only": encoder_only, "notes": notes, "dropped_keys": [],
                "tokenizer": {"patch": patch, "channels": channels, "grid": list(grid), "mean": list(mean),
                              "std": list(std)}}
    out = to_mmmae(state, name, depth, decoder_depth)
    return Converted({k: v.float().contiguous() for k, v in out.items()}, "\n".join(lines) + "\n", metadata)
