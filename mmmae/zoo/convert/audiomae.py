"""AudioMAE (facebookresearch/AudioMAE) -> mmmae.

Pretraining layout (`models_mae.MaskedAutoencoderViT`, audio_exp):
    patch_embed.proj.{weight (D, 1, p, p), bias}, cls_token (1, 1, D), pos_embed (1, 1 + N, D)
    (a stored parameter: the 2-D sin-cos table over the (time, frequency) patch grid, zero class row),
    blocks.{i}.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}, norm
    decoder_embed, mask_token, decoder_pos_embed, decoder_blocks.{j}.*, decoder_norm, decoder_pred
The released models use decoder_mode=1: 16 Swin blocks (window 4x4, shifted (2, 0); keys
decoder_blocks.{j}.attn.relative_position_bias_table / relative_position_index / attn_mask)
that mmmae's MaskTokenDecoder cannot express: those checkpoints convert encoder-only and every
decoder key is listed in the metadata (`dropped_keys`, `dropped_patterns`). A decoder_mode=0
checkpoint (plain ViT decoder blocks) converts whole, like image MAE. Fine-tuned checkpoints
(`fc_norm`, `head`, no `norm` with global pooling) convert encoder-only: `head` dropped, `fc_norm`
(the LayerNorm of the mean-pooled patch tokens) kept as the encoder's pool norm
(`Encoder.pool_norm_eps`), so `model.features` are the source's pooled features. Head counts:
options `heads` / `decoder_heads`, else the released models' counts for their widths (heads.py).

mmmae model: an 'audio' modality, AudioTokenizer (raw Kaldi fbank (B, T, 128) or waveform in;
normalised (x - mean) / (2 std) with AudioSet's statistics unless options mean / std /
norm_scale say otherwise; (time, frequency) patches, token index t * F' + f as AudioMAE's
Conv2d over (B, 1, T, F)), the stored table as a learned table at the checkpoint's grid
(`pos_embed='learned'`, resampled for other target lengths), a class token (cls_token + its
position row), fused qkv as timm's, LayerNorm eps 1e-6.
"""

import re

import torch

from mmmae.tokenizers.audio import AUDIOMAE_AUDIOSET_NORM
from mmmae.zoo.convert.checkpoint_io import check_keys
from mmmae.zoo.convert.converted import Converted, gin_lines, option, single_modality_model
from mmmae.zoo.convert.heads import MAE_DECODER_HEADS, VIT_HEADS, head_count
from mmmae.zoo.convert.hf_vitmae import PARAMS, mae_targets
from mmmae.zoo.convert.videomae import mlp_ratio
from mmmae.zoo.convert.vit_keys import blocks_source_keys, convert_blocks, depth

LAYOUT = "AudioMAE checkpoint"
SWIN_PATTERNS = ("decoder_embed.*", "mask_token", "decoder_pos_embed", "decoder_blocks.*.* (Swin: norm1, "
                 "attn.qkv, attn.proj, attn.relative_position_bias_table, attn.relative_position_index, attn_mask, "
                 "norm2, mlp.fc1, mlp.fc2)", "decoder_norm.*", "decoder_pred.*")
CLASSIFIER = re.compile(r"^head\.")


def is_decoder_key(key: str) -> bool:
    return key.startswith("decoder_") or key == "mask_token"


def swin_decoder(state: dict) -> bool:
    """Whether the decoder blocks are Swin blocks (decoder_mode=1), read off their keys."""
    return any(re.match(r"decoder_blocks\.\d+\.(attn\.relative_position|attn_mask)", k) for k in state)


def audio_grid(options: dict, rows: int, patch: int) -> tuple[int, int]:
    """(T', F') from options target_length / num_mel_bins (AudioMAE's 1024 x 128), checked against `rows`."""
    length = option(options, "target_length", int, 1024, LAYOUT)
    bins = option(options, "num_mel_bins", int, 128, LAYOUT)
    grid = (length // patch, bins // patch)
    if grid[0] * grid[1] != rows or length % patch or bins % patch:
        raise ValueError(f"{LAYOUT}: pos_embed has {rows} patch rows, not the {grid[0]}x{grid[1]} grid of a "
                         f"{length} x {bins} fbank in {patch}x{patch} patches; pass --option target_length=... "
                         f"--option num_mel_bins=...")
    return grid


def convert(state: dict[str, torch.Tensor], options: dict) -> Converted:
    """An AudioMAE pretraining (or fine-tuned) state dict -> mmmae (see the module docstring)."""
    if "patch_embed.proj.weight" not in state or "pos_embed" not in state:
        raise ValueError(f"{LAYOUT}: no patch_embed.proj.weight / pos_embed; keys start {sorted(state)[:8]}")
    notes: list[str] = []
    dropped = sorted(k for k in state if CLASSIFIER.match(k))
    whole_decoder = any(is_decoder_key(k) for k in state) and not swin_decoder(state)
    if not whole_decoder:
        dropped += sorted(k for k in state if is_decoder_key(k))
    if dropped:
        notes.append(f"converted encoder-only; dropped {len(dropped)} keys (see dropped_keys)")
    state = {k: v for k, v in state.items() if k not in dropped}
    dim, channels, patch, patch_w = state["patch_embed.proj.weight"].shape
    if channels != 1 or patch != patch_w:
        raise ValueError(f"{LAYOUT}: patch_embed.proj.weight {tuple(state['patch_embed.proj.weight'].shape)} is not "
                         f"a one-channel square patch (AudioMAE's overlapping use_custom_patch is not supported)")
    table = state["pos_embed"].reshape(-1, dim)
    grid = audio_grid(options, table.shape[0] - 1, patch)
    count = depth(state, "blocks.")
    final_norm, pool_norm = "norm.weight" in state, "fc_norm.weight" in state
    expected = ["patch_embed.proj.weight", "patch_embed.proj.bias", "cls_token", "pos_embed"]
    expected += blocks_source_keys("blocks.", count, "qkv") + (["norm.weight", "norm.bias"] if final_norm else [])
    expected += ["fc_norm.weight", "fc_norm.bias"] if pool_norm else []
    dec_count = depth(state, "decoder_blocks.")
    if whole_decoder:
        expected += ["mask_token", "decoder_pos_embed"] + [f"decoder_{m}.{p}" for m in ("embed", "norm", "pred")
                                                          for p in PARAMS]
        expected += blocks_source_keys("decoder_blocks.", dec_count, "qkv")
    check_keys(state, expected, LAYOUT)

    tok, dec = "modalities.audio.tokenizer.", "modalities.audio.decoder."
    out = {f"{tok}proj.{p}": state[f"patch_embed.proj.{p}"] for p in PARAMS}
    out |= {f"{tok}positions.table": table[1:], "modalities.audio.embedding": table.new_zeros(1, 1, dim),
            "modalities.audio.cls_token": state["cls_token"] + table[:1]}
    out |= convert_blocks(state, "blocks.", "encoder.blocks.", count, "qkv")
    out |= {f"encoder.norm.{p}": state[f"norm.{p}"] for p in PARAMS} if final_norm else {}
    out |= {f"encoder.pool_norm.{p}": state[f"fc_norm.{p}"] for p in PARAMS} if pool_norm else {}
    heads = head_count(options, "heads", dim, VIT_HEADS, LAYOUT, notes)
    if whole_decoder:
        dec_dim = state["mask_token"].shape[-1]
        dec_ratio = mlp_ratio(dec_dim, state["decoder_blocks.0.mlp.fc1.weight"].shape[0])
        dec_table = state["decoder_pos_embed"].reshape(-1, dec_dim)
        out |= {f"{dec}embed.{p}": state[f"decoder_embed.{p}"] for p in PARAMS}
        out |= {f"{dec}mask_token": state["mask_token"], f"{dec}positions.table": dec_table[1:],
                f"{dec}cls_embed": dec_table[None, :1]}
        out |= convert_blocks(state, "decoder_blocks.", f"{dec}transformer.blocks.", dec_count, "qkv")
        out |= {f"{dec}transformer.norm.{p}": state[f"decoder_norm.{p}"] for p in PARAMS}
        out |= {f"{dec}head.{p}": state[f"decoder_pred.{p}"] for p in PARAMS}
    else:
        dec_dim = option(options, "decoder_dim", int, 512, LAYOUT)
        dec_count = option(options, "decoder_depth", int, 8, LAYOUT)
        dec_ratio = 4.0
        notes.append(f"a fresh plain-transformer decoder {dec_dim} wide, {dec_count} blocks (not AudioMAE's Swin "
                     f"decoder)")
    dec_heads = head_count(options, "decoder_heads", dec_dim, MAE_DECODER_HEADS, LAYOUT, notes,
                           "decoder" if whole_decoder else "fresh decoder")
    norm = AUDIOMAE_AUDIOSET_NORM
    if options.get("mean") is None:
        notes.append("fbank normalisation: AudioSet's mean -4.2677393 / std 4.5689974 / norm_scale 2 assumed "
                     "(ESC-50: --option mean=-6.6268077 --option std=5.358466)")
    eps = option(options, "norm_eps", float, 1e-6, LAYOUT)
    bindings = {
        "Encoder.dim": dim, "Encoder.depth": count, "Encoder.heads": heads, "Encoder.norm_eps": eps,
        "Encoder.final_norm": final_norm, **({"Encoder.pool_norm_eps": eps} if pool_norm else {}),
        "Block.mlp_ratio": mlp_ratio(dim, state["blocks.0.mlp.fc1.weight"].shape[0]),
        "audio/AudioTokenizer.dim": dim, "audio/AudioTokenizer.patch": patch,
        "audio/AudioTokenizer.num_mel_bins": grid[1] * patch, "audio/AudioTokenizer.target_length": grid[0] * patch,
        "audio/AudioTokenizer.pos_embed": "learned", "audio/AudioTokenizer.pos_grid": grid,
        "audio/AudioTokenizer.mean": option(options, "mean", float, norm.mean, LAYOUT),
        "audio/AudioTokenizer.std": option(options, "std", float, norm.std, LAYOUT),
        "audio/AudioTokenizer.norm_scale": option(options, "norm_scale", float, norm.norm_scale, LAYOUT),
        "audio/AudioTokenizer.norm_target": mae_targets(options, True, LAYOUT),
        "audio/MaskTokenDecoder.dim": dec_dim, "audio/MaskTokenDecoder.depth": dec_count,
        "audio/MaskTokenDecoder.heads": dec_heads,
        "audio/MaskTokenDecoder.pos_embed": "learned" if whole_decoder else "separable",
        "audio/MaskTokenDecoder.pos_grid": grid if whole_decoder else None, "audio/MaskTokenDecoder.norm_eps": eps,
        "audio/MaskTokenDecoder.embed_bias": True, "audio/MaskTokenDecoder.cls_token": "encoded",
        "audio/Block.mlp_ratio": dec_ratio,
        "audio/RandomMasking.ratio": option(options, "mask_ratio", float, 0.8, LAYOUT),
        "audio/Modality.name": "audio", "audio/Modality.cls_token": True, "audio/Reconstruction.modality": "audio",
    }
    lines = ([f"# Converted by `mmmae convert --from audiomae` ({LAYOUT})."] + gin_lines(bindings)
             + single_modality_model("audio", "AudioTokenizer", "RandomMasking"))
    metadata = {"source": LAYOUT, "encoder_only": not whole_decoder, "notes": notes, "dropped_keys": dropped,
                "dropped_patterns": list(SWIN_PATTERNS) if swin_decoder({k: None for k in dropped}) else [],
                "tokenizer": {"patch": patch, "grid": list(grid), "target_length": grid[0] * patch,
                              "num_mel_bins": grid[1] * patch}}
    return Converted({k: v.float().contiguous() for k, v in out.items()}, "\n".join(lines) + "\n", metadata)
