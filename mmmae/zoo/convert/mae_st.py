"""MAE-ST (facebookresearch/mae_st, "Masked Autoencoders As Spatiotemporal Learners") -> mmmae.

Pretraining layout (`models_mae.MaskedAutoencoderViT`; top level `model` or `model_state`):
    patch_embed.proj.{weight (D, C, t, p, p), bias}
    cls_token (1, 1, D) and, with sep_pos_embed (the released models), learned
    pos_embed_spatial (1, H'W', D), pos_embed_temporal (1, T', D), pos_embed_class (1, 1, D);
    else pos_embed (1, [1 +] T'H'W', D). cls_embed=False checkpoints have no class keys.
    blocks.{i}.{norm1, attn.q, attn.k, attn.v, attn.proj, norm2, mlp.fc1, mlp.fc2}, norm
    decoder_embed (with bias), mask_token, decoder_cls_token, decoder_pos_embed_{spatial,temporal,class}
    (or decoder_pos_embed), decoder_blocks.{j}.*, decoder_norm, decoder_pred (u*p*p*C, Dd)
A checkpoint without decoder keys converts encoder-only (a fresh decoder in the config).
Fine-tuned layout (`models_vit.VisionTransformer`): the encoder keys and the classifier `head`
(dropped, listed in the metadata); its `norm` is applied to the mean-pooled patch tokens, so it
becomes the encoder's pool norm (`Encoder.pool_norm_eps`, no per-token final norm). Head counts:
options `heads` / `decoder_heads`, else the released models' counts for their widths (heads.py).

mmmae model: a 'video' modality, TubeletTokenizer (pixels in [0, 1], standardised with
Kinetics' mean 0.45 / std 0.225) with `pos_embed='learned_separable'` at the checkpoint's
(T', H', W') (resampled for other frame counts and sizes), a class token (cls_token +
pos_embed_class); q, k, v fused; LayerNorm eps 1e-6. The decoder: a bias on its embedding,
MAE-ST's own decoder class token (`cls_token='learned'`, decoder_cls_token +
decoder_pos_embed_class), and `target_tubelet=u` (u = t * pred_t_dim / frames: each token
predicts u frames of the clip subsampled to pred_t_dim frames, as MAE-ST's loss does).
"""

import torch

from mmmae.zoo.convert.checkpoint_io import check_keys
from mmmae.zoo.convert.converted import Converted, gin_lines, option, single_modality_model
from mmmae.zoo.convert.heads import MAE_DECODER_HEADS, VIT_HEADS, head_count
from mmmae.zoo.convert.hf_vitmae import PARAMS, mae_targets
from mmmae.zoo.convert.videomae import mlp_ratio, pixel_stats
from mmmae.zoo.convert.vit_keys import RENAMED, convert_blocks, depth

LAYOUT = "MAE-ST checkpoint"
KINETICS_MEAN, KINETICS_STD = (0.45, 0.45, 0.45), (0.225, 0.225, 0.225)


def block_keys(src: str, qkv_bias: bool) -> list[str]:
    keys = [f"{src}{name}.{p}" for name in RENAMED for p in PARAMS]
    return keys + [f"{src}attn.{x}.{p}" for x in "qkv" for p in (PARAMS if qkv_bias else PARAMS[:1])]


def fuse_qkv(state: dict, prefix: str, count: int) -> dict[str, torch.Tensor]:
    """MAE-ST's separate attn.q / attn.k / attn.v -> timm's fused attn.qkv (bias zero when absent)."""
    fused = dict(state)
    for i in range(count):
        src = f"{prefix}{i}.attn."
        weights = [fused.pop(f"{src}{x}.weight") for x in "qkv"]
        biases = [fused.pop(f"{src}{x}.bias", w.new_zeros(w.shape[0])) for x, w in zip("qkv", weights)]
        fused[f"{src}qkv.weight"], fused[f"{src}qkv.bias"] = torch.cat(weights), torch.cat(biases)
    return fused


def position_keys(prefix: str, separable: bool, cls: bool) -> list[str]:
    """Position keys under `prefix` ('' or 'decoder_'); the class keys (cls_token / decoder_cls_token) too."""
    cls_key = [f"{prefix}cls_token"] if cls else []
    if separable:
        return cls_key + [f"{prefix}pos_embed_{n}" for n in ("spatial", "temporal")] + (
            [f"{prefix}pos_embed_class"] if cls else [])
    return cls_key + [f"{prefix}pos_embed"]


def positions(state: dict, prefix: str, separable: bool, cls: bool, dst: str) -> dict[str, torch.Tensor]:
    """mmmae position tables under `dst` and the class token's position (key 'cls_position')."""
    if separable:
        out = {f"{dst}spatial": state[f"{prefix}pos_embed_spatial"][0],
               f"{dst}temporal": state[f"{prefix}pos_embed_temporal"][0]}
        return out | ({"cls_position": state[f"{prefix}pos_embed_class"]} if cls else {})
    table = state[f"{prefix}pos_embed"][0]
    return {f"{dst}table": table[1:], "cls_position": table[None, :1]} if cls else {f"{dst}table": table}


def lattice(state: dict, options: dict, separable: bool, cls: bool, tubelet: int, patch: int,
            notes: list[str]) -> tuple[int, int, int]:
    """(T', H', W'): from the separable tables' lengths, else frames / t (option `frames`, MAE-ST's
    16 when not given, noted) and a square of the rest; option image_size checks the side."""
    size = option(options, "image_size", int, None, LAYOUT)
    if separable:
        frames, space = state["pos_embed_temporal"].shape[1], state["pos_embed_spatial"].shape[1]
    else:
        if options.get("frames") is None:
            notes.append("a joint pos_embed: frames=16 assumed for its (T', H', W') lattice (pass --option frames=N)")
        frames = option(options, "frames", int, 16, LAYOUT) // tubelet
        space = (state["pos_embed"].shape[1] - cls) // frames
    side = size // patch if size else round(space ** 0.5)
    if side * side != space or (not separable and frames * space != state["pos_embed"].shape[1] - cls):
        raise ValueError(f"{LAYOUT}: the position tables do not fit a square (T', H', W') lattice with "
                         f"{'' if separable else f'T={frames} (frames / t) and '}{space} spatial positions; pass "
                         f"--option frames=... / --option image_size=...")
    return frames, side, side


def convert(state: dict[str, torch.Tensor], options: dict) -> Converted:
    """A MAE-ST pretraining or fine-tuned state dict -> mmmae (see the module docstring)."""
    if "patch_embed.proj.weight" not in state or state["patch_embed.proj.weight"].ndim != 5:
        raise ValueError(f"{LAYOUT}: no Conv3d patch_embed.proj.weight; keys start {sorted(state)[:8]}")
    notes: list[str] = []
    dropped = sorted(k for k in state if k.startswith("head."))
    state = {k: v for k, v in state.items() if k not in dropped}
    if dropped:
        notes.append(f"fine-tuned checkpoint: encoder only, its norm on the pooled feature; dropped the classifier "
                     f"{dropped}")
    dim, channels, tubelet, patch = state["patch_embed.proj.weight"].shape[:4]
    separable, cls = "pos_embed_spatial" in state, "cls_token" in state
    count = depth(state, "blocks.")
    qkv_bias = "blocks.0.attn.q.bias" in state
    encoder_only = "decoder_embed.weight" not in state
    grid = lattice(state, options, separable, cls, tubelet, patch, notes)
    expected = ["patch_embed.proj.weight", "patch_embed.proj.bias", "norm.weight", "norm.bias"]
    expected += position_keys("", separable, cls)
    expected += [k for i in range(count) for k in block_keys(f"blocks.{i}.", qkv_bias)]
    dec_count = depth(state, "decoder_blocks.")
    if not encoder_only:
        expected += ["mask_token"] + [f"decoder_{m}.{p}" for m in ("embed", "norm", "pred") for p in PARAMS]
        expected += position_keys("decoder_", separable, cls)
        expected += [k for j in range(dec_count) for k in block_keys(f"decoder_blocks.{j}.", qkv_bias)]
    check_keys(state, expected, LAYOUT)

    tok, dec = "modalities.video.tokenizer.", "modalities.video.decoder."
    fused = fuse_qkv(fuse_qkv(state, "blocks.", count), "decoder_blocks.", dec_count)
    out = {f"{tok}proj.{p}": state[f"patch_embed.proj.{p}"] for p in PARAMS}
    out |= {"modalities.video.embedding": state["patch_embed.proj.bias"].new_zeros(1, 1, dim)}
    encoder_positions = positions(state, "", separable, cls, f"{tok}positions.")
    if cls:
        out["modalities.video.cls_token"] = state["cls_token"] + encoder_positions.pop("cls_position")
    out |= encoder_positions | convert_blocks(fused, "blocks.", "encoder.blocks.", count, "qkv")
    out |= {f"encoder.{'pool_norm' if dropped else 'norm'}.{p}": state[f"norm.{p}"] for p in PARAMS}
    heads = head_count(options, "heads", dim, VIT_HEADS, LAYOUT, notes)
    ratio = mlp_ratio(dim, state["blocks.0.mlp.fc1.weight"].shape[0])
    target_tubelet = None
    if encoder_only:
        dec_dim = option(options, "decoder_dim", int, 512, LAYOUT)
        dec_count = option(options, "decoder_depth", int, 4, LAYOUT)
        dec_ratio = 4.0
        notes.append(f"no decoder in the checkpoint: a fresh decoder {dec_dim} wide, {dec_count} blocks")
    else:
        dec_dim = state["mask_token"].shape[-1]
        dec_ratio = mlp_ratio(dec_dim, state["decoder_blocks.0.mlp.fc1.weight"].shape[0])
        predicted = state["decoder_pred.weight"].shape[0]
        if predicted % (patch * patch * channels):
            raise ValueError(f"{LAYOUT}: decoder_pred.weight predicts {predicted} values per token, not a multiple "
                             f"of patch*patch*channels = {patch * patch * channels}")
        target_tubelet = predicted // (patch * patch * channels)
        out |= {f"{dec}embed.{p}": state[f"decoder_embed.{p}"] for p in PARAMS}
        out[f"{dec}mask_token"] = state["mask_token"]
        decoder_positions = positions(state, "decoder_", separable, cls, f"{dec}positions.")
        if cls:
            out[f"{dec}cls_embed"] = state["decoder_cls_token"] + decoder_positions.pop("cls_position")
        out |= decoder_positions
        out |= convert_blocks(fused, "decoder_blocks.", f"{dec}transformer.blocks.", dec_count, "qkv")
        out |= {f"{dec}transformer.norm.{p}": state[f"decoder_norm.{p}"] for p in PARAMS}
        out |= {f"{dec}head.{p}": state[f"decoder_pred.{p}"] for p in PARAMS}
    dec_heads = head_count(options, "decoder_heads", dec_dim, MAE_DECODER_HEADS, LAYOUT, notes,
                           "fresh decoder" if encoder_only else "decoder")
    if options.get("mean") is None or options.get("std") is None:
        notes.append("input standardisation: Kinetics mean 0.45 / std 0.225 assumed (pass --option mean=... std=...)")
    given = {k: v for k, v in options.items() if v is not None}
    mean, std = pixel_stats({"mean": KINETICS_MEAN, "std": KINETICS_STD} | given, channels, LAYOUT, notes)
    eps = option(options, "norm_eps", float, 1e-6, LAYOUT)
    table = "learned_separable" if separable else "learned"
    bindings = {
        "Encoder.dim": dim, "Encoder.depth": count, "Encoder.heads": heads, "Encoder.norm_eps": eps,
        "Block.mlp_ratio": ratio, **({"Encoder.final_norm": False, "Encoder.pool_norm_eps": eps} if dropped else {}),
        "video/TubeletTokenizer.dim": dim, "video/TubeletTokenizer.tubelet": tubelet,
        "video/TubeletTokenizer.patch": patch, "video/TubeletTokenizer.channels": channels,
        "video/TubeletTokenizer.pos_embed": table, "video/TubeletTokenizer.pos_grid": grid,
        "video/TubeletTokenizer.mean": mean, "video/TubeletTokenizer.std": std,
        "video/TubeletTokenizer.norm_target": mae_targets(options, True, LAYOUT),
        "video/TubeletTokenizer.target_tubelet": None if target_tubelet == tubelet else target_tubelet,
        "video/MaskTokenDecoder.dim": dec_dim, "video/MaskTokenDecoder.depth": dec_count,
        "video/MaskTokenDecoder.heads": dec_heads, "video/MaskTokenDecoder.pos_embed": table,
        "video/MaskTokenDecoder.pos_grid": grid, "video/MaskTokenDecoder.norm_eps": eps,
        "video/MaskTokenDecoder.embed_bias": True, "video/MaskTokenDecoder.cls_token": "learned" if cls else None,
        "video/Block.mlp_ratio": dec_ratio,
        "video/RandomMasking.ratio": option(options, "mask_ratio", float, 0.9, LAYOUT),
        "video/Modality.name": "video", "video/Modality.cls_token": cls, "video/Reconstruction.modality": "video",
    }
    lines = ([f"# Converted by `mmmae convert --from mae-st` ({LAYOUT})."] + gin_lines(bindings)
             + single_modality_model("video", "TubeletTokenizer", "RandomMasking"))
    if not qkv_bias:
        notes.append("no_qkv_bias: the q, k, v biases are zeros (mmmae's attention always has them)")
    metadata = {"source": LAYOUT, "encoder_only": encoder_only, "notes": notes, "dropped_keys": dropped,
                "tokenizer": {"tubelet": tubelet, "patch": patch, "channels": channels, "grid": list(grid),
                              "target_tubelet": target_tubelet, "mean": list(mean), "std": list(std)}}
    return Converted({k: v.float().contiguous() for k, v in out.items()}, "\n".join(lines) + "\n", metadata)
