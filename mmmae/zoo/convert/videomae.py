"""Official VideoMAE (MCG-NJU, v1) and VideoMAE V2 (OpenGVLab) checkpoints -> mmmae.

Pretraining layout (v2 may prefix every key with `_orig_mod.`; read_source strips it):
    encoder.patch_embed.proj.{weight (De, C, t, p, p), bias}
    encoder.blocks.{i}.{norm1, attn.qkv (no bias), attn.q_bias, attn.v_bias, attn.proj, norm2, mlp.fc1, mlp.fc2}
    encoder.norm, encoder_to_decoder.weight (Dd, De), mask_token (1, 1, Dd)
    decoder.blocks.{j}.* (as the encoder's), decoder.norm, decoder.head (t*p*p*C, Dd)
A checkpoint without the decoder keys converts encoder-only (a fresh decoder in the config).
Fine-tuned layout: patch_embed, blocks.{i}, `norm` or (mean pooling) `fc_norm`, `head` (the
classifier): converted encoder-only, `head` dropped and listed in the metadata; `fc_norm` (the
LayerNorm of the mean-pooled feature) becomes the encoder's pool norm (`Encoder.pool_norm_eps`),
so the converted model's pooled features (`model.features`) are the source's.

Neither layout stores positions (a fixed 1-D sin-cos table over the flattened (t, h, w) index,
mmmae's `pos_embed='joint'`) or head counts: heads come from options `heads` /
`decoder_heads`, else the released models' counts for their widths (heads.py); any other
width is an error asking for the option.
"""

from dataclasses import dataclass, field

import torch

from mmmae.tokenizers.patches import IMAGENET_MEAN, IMAGENET_STD
from mmmae.zoo.convert.checkpoint_io import check_keys
from mmmae.zoo.convert.converted import Converted, gin_lines, option, single_modality_model
from mmmae.zoo.convert.heads import head_count
from mmmae.zoo.convert.vit_keys import blocks_source_keys, convert_blocks, depth, qkv_bias_style

LAYOUT = "VideoMAE checkpoint"
ENCODER_HEADS = {384: 6, 768: 12, 1024: 16, 1280: 16, 1408: 16}  # ViT-S/B/L/H/g as released
DECODER_HEADS = {192: 3, 384: 6, 512: 8, 640: 8}  # the decoders of ViT-S/B/L/H (v1) and ViT-g (v2)
MASKINGS = ("tube", "running_cell")
TOKENIZER, DECODER = "modalities.video.tokenizer.", "modalities.video.decoder."


@dataclass
class DecoderSpec:
    dim: int
    depth: int
    heads: int
    mlp_ratio: float = 4.0
    norm_eps: float = 1e-6
    final_norm_eps: float = 1e-6
    bias: str = "qv"  # the source blocks' qkv bias style (vit_keys.QKV_BIASES)


@dataclass
class VideoMAESpec:
    """Everything the mmmae model needs that a VideoMAE checkpoint or config determines."""

    dim: int
    depth: int
    heads: int
    tubelet: int
    patch: int
    channels: int
    decoder: DecoderSpec
    mlp_ratio: float = 4.0
    norm_eps: float = 1e-6
    final_norm: bool = True
    pool_norm_eps: float | None = None  # the fine-tuned fc_norm's epsilon; None: no fc_norm
    bias: str = "qv"
    encoder_only: bool = False
    norm_target: bool = True
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    masking: str = "tube"
    mask_ratio: float = 0.9
    decoder_ratio: float = 0.5
    notes: list[str] = field(default_factory=list)


def mlp_ratio(dim: int, hidden: int) -> float:
    """A ratio r with int(dim * r) == hidden (mmmae's Block rounds down; hidden / dim can fall short)."""
    ratio = hidden / dim
    return ratio if int(dim * ratio) == hidden else (hidden + 0.5) / dim


def _mlp_ratio(state: dict, prefix: str, dim: int) -> float:
    """The MLP ratio of the first block under `prefix` (4 when it is missing; check_keys then reports it)."""
    weight = state.get(f"{prefix}0.mlp.fc1.weight")
    return 4.0 if weight is None else mlp_ratio(dim, weight.shape[0])


def pixel_stats(options: dict, channels: int, layout: str, notes: list[str]) -> tuple[tuple, tuple]:
    """The tokenizer's mean/std: options mean/std, else a processor's image_mean/image_std, else
    ImageNet's for 3 channels and (0, 1) otherwise. The source expects pixels standardised with
    these; mmmae takes [0, 1] pixels and standardises them itself."""
    mean = option(options, "mean", tuple, option(options, "image_mean", tuple, None, layout), layout)
    std = option(options, "std", tuple, option(options, "image_std", tuple, None, layout), layout)
    if mean is None or std is None:
        imagenet = channels == 3
        mean = mean or (IMAGENET_MEAN if imagenet else (0.0,) * channels)
        std = std or (IMAGENET_STD if imagenet else (1.0,) * channels)
        notes.append(f"input standardisation mean={tuple(mean)} std={tuple(std)} assumed "
                     f"({'ImageNet' if imagenet else 'none'}; pass --option mean=... --option std=...)")
    for name, values in (("mean", mean), ("std", std)):
        if len(values) != channels:
            raise ValueError(f"{layout}: option {name} has {len(values)} values for {channels} channels")
    return tuple(mean), tuple(std)


def config_text(spec: VideoMAESpec, source: str) -> str:
    """Gin text that alone builds the converted model (a video modality, VideoMAE decoder, masker
    and reconstruction objective, so it trains as it is)."""
    d = spec.decoder
    bindings = {
        "Encoder.dim": spec.dim, "Encoder.depth": spec.depth, "Encoder.heads": spec.heads,
        "Encoder.norm_eps": spec.norm_eps, "Encoder.final_norm": spec.final_norm, "Block.mlp_ratio": spec.mlp_ratio,
        **({} if spec.pool_norm_eps is None else {"Encoder.pool_norm_eps": spec.pool_norm_eps}),
        "video/TubeletTokenizer.dim": spec.dim, "video/TubeletTokenizer.tubelet": spec.tubelet,
        "video/TubeletTokenizer.patch": spec.patch, "video/TubeletTokenizer.channels": spec.channels,
        "video/TubeletTokenizer.pos_embed": "joint", "video/TubeletTokenizer.norm_target": spec.norm_target,
        "video/TubeletTokenizer.mean": spec.mean, "video/TubeletTokenizer.std": spec.std,
        "video/MaskTokenDecoder.dim": d.dim, "video/MaskTokenDecoder.depth": d.depth,
        "video/MaskTokenDecoder.heads": d.heads, "video/MaskTokenDecoder.pos_embed": "joint",
        "video/MaskTokenDecoder.norm_eps": d.norm_eps, "video/MaskTokenDecoder.final_norm_eps": d.final_norm_eps,
        "video/Block.mlp_ratio": d.mlp_ratio,
        "video/TubeMasking.ratio": spec.mask_ratio,
    }
    lines = [f"# Converted by `mmmae convert` from {source}."]
    lines += gin_lines(bindings)
    if spec.masking == "running_cell":
        lines += ["video/RunningCellMasking.encoder_masker = @video/TubeMasking()",
                  f"video/RunningCellMasking.ratio = {spec.decoder_ratio!r}", "video/RunningCellMasking.cell = (2, 2)"]
    masker = "RunningCellMasking" if spec.masking == "running_cell" else "TubeMasking"
    lines += ["video/Modality.name = 'video'", "video/Reconstruction.modality = 'video'"]
    lines += single_modality_model("video", "TubeletTokenizer", masker)
    return "\n".join(lines) + "\n"


def pretraining_keys(spec: VideoMAESpec) -> list[str]:
    """The keys of a pretraining-layout state dict with this spec."""
    keys = ["encoder.patch_embed.proj.weight", "encoder.patch_embed.proj.bias"]
    keys += blocks_source_keys("encoder.blocks.", spec.depth, spec.bias)
    keys += ["encoder.norm.weight", "encoder.norm.bias"] if spec.final_norm else []
    keys += ["fc_norm.weight", "fc_norm.bias"] if spec.pool_norm_eps is not None else []
    if not spec.encoder_only:
        d = spec.decoder
        keys += ["encoder_to_decoder.weight", "mask_token", "decoder.norm.weight", "decoder.norm.bias",
                 "decoder.head.weight", "decoder.head.bias"] + blocks_source_keys("decoder.blocks.", d.depth, d.bias)
    return keys


def to_mmmae(state: dict[str, torch.Tensor], spec: VideoMAESpec, layout: str = LAYOUT) -> dict[str, torch.Tensor]:
    """A pretraining-layout state dict -> MaskedAutoencoder keys (decoder keys unless encoder_only);
    the modality embedding, which VideoMAE does not have, is zero."""
    check_keys(state, pretraining_keys(spec), layout)
    proj = state["encoder.patch_embed.proj.weight"]
    out = {f"{TOKENIZER}proj.weight": proj, f"{TOKENIZER}proj.bias": state["encoder.patch_embed.proj.bias"],
           "modalities.video.embedding": proj.new_zeros(1, 1, spec.dim)}
    out |= convert_blocks(state, "encoder.blocks.", "encoder.blocks.", spec.depth, spec.bias)
    if spec.final_norm:
        out |= {f"encoder.norm.{p}": state[f"encoder.norm.{p}"] for p in ("weight", "bias")}
    if spec.pool_norm_eps is not None:
        out |= {f"encoder.pool_norm.{p}": state[f"fc_norm.{p}"] for p in ("weight", "bias")}
    if not spec.encoder_only:
        d = spec.decoder
        out[f"{DECODER}embed.weight"] = state["encoder_to_decoder.weight"]
        out[f"{DECODER}mask_token"] = state["mask_token"].reshape(1, 1, d.dim)
        out |= convert_blocks(state, "decoder.blocks.", f"{DECODER}transformer.blocks.", d.depth, d.bias)
        out |= {f"{DECODER}transformer.norm.{p}": state[f"decoder.norm.{p}"] for p in ("weight", "bias")}
        out |= {f"{DECODER}head.{p}": state[f"decoder.head.{p}"] for p in ("weight", "bias")}
    return {k: v.float().contiguous() for k, v in out.items()}


def has_decoder(state: dict) -> bool:
    """Whether a pretraining-layout state dict has any decoder key."""
    return any(k.startswith(("decoder.", "encoder_to_decoder.")) or k == "mask_token" for k in state)


def fine_tuned_to_pretraining(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Fine-tuned keys (patch_embed, blocks, norm) under `encoder.`, `fc_norm.*` as they are;
    the classifier `head.*` dropped (returned)."""
    dropped = sorted(k for k in state if k.startswith("head."))
    return {k if k.startswith("fc_norm.") else f"encoder.{k}": v for k, v in state.items() if k not in dropped}, dropped


def _decoder_spec(state: dict, spec_dim: int, tubelet: int, patch: int, channels: int, options: dict,
                  notes: list[str]) -> DecoderSpec:
    """Decoder sizes read off the decoder keys; for an encoder-only checkpoint, options or VideoMAE's defaults."""
    norm_eps = option(options, "norm_eps", float, 1e-6, LAYOUT)
    if not has_decoder(state):
        dim = option(options, "decoder_dim", int, spec_dim // 2, LAYOUT)
        count = option(options, "decoder_depth", int, 4, LAYOUT)
        heads = head_count(options, "decoder_heads", dim, DECODER_HEADS, LAYOUT, notes, "fresh decoder")
        notes.append(f"no decoder in the checkpoint: a fresh decoder {dim} wide, {count} blocks, {heads} heads")
        return DecoderSpec(dim, count, heads, norm_eps=norm_eps, final_norm_eps=norm_eps)
    sized = [state[k].shape[-1] for k in ("mask_token", "decoder.norm.weight") if k in state]
    if not sized:
        raise ValueError(f"{LAYOUT}: the checkpoint has decoder keys but neither mask_token nor decoder.norm.weight")
    dim = sized[0]
    count = depth(state, "decoder.blocks.")
    if count == 0:
        raise ValueError(f"{LAYOUT}: the checkpoint has decoder keys but no decoder.blocks.* keys")
    heads = head_count(options, "decoder_heads", dim, DECODER_HEADS, LAYOUT, notes, "decoder")
    head_out = state["decoder.head.weight"].shape[0] if "decoder.head.weight" in state else None
    if head_out is not None and head_out != tubelet * patch * patch * channels:
        raise ValueError(f"{LAYOUT}: decoder.head.weight predicts {head_out} values per token, not "
                         f"{tubelet}*{patch}*{patch}*{channels} = {tubelet * patch * patch * channels} "
                         f"(tubelet*patch*patch*channels from encoder.patch_embed.proj.weight)")
    return DecoderSpec(dim, count, heads, _mlp_ratio(state, "decoder.blocks.", dim), norm_eps, norm_eps,
                       qkv_bias_style(state, "decoder.blocks."))


def infer_spec(state: dict[str, torch.Tensor], options: dict) -> VideoMAESpec:
    """Sizes from the pretraining-layout key shapes; heads and pixel statistics from options or defaults."""
    if "encoder.patch_embed.proj.weight" not in state:
        hint = " (a Hugging Face checkpoint: use --from hf-videomae)" if any(
            k.startswith(("videomae.", "embeddings.patch_embeddings.")) for k in state) else ""
        raise ValueError(f"{LAYOUT}: no encoder.patch_embed.proj.weight (nor fine-tuned patch_embed.proj.weight)"
                         f"{hint}; keys start {sorted(state)[:4]}")
    dim, channels, tubelet, patch, patch_w = state["encoder.patch_embed.proj.weight"].shape
    if patch != patch_w:
        raise ValueError(f"{LAYOUT}: encoder.patch_embed.proj.weight has non-square patches {patch}x{patch_w}")
    notes: list[str] = []
    heads = head_count(options, "heads", dim, ENCODER_HEADS, LAYOUT, notes)
    count = depth(state, "encoder.blocks.")
    default_masking = "running_cell" if options.get("kind") == "videomae-v2" else "tube"
    masking = option(options, "masking", str, default_masking, LAYOUT)
    if masking not in MASKINGS:
        raise ValueError(f"{LAYOUT}: option masking={masking!r} is not one of {MASKINGS}")
    mean, std = pixel_stats(options, channels, LAYOUT, notes)
    norm_eps = option(options, "norm_eps", float, 1e-6, LAYOUT)
    return VideoMAESpec(
        dim=dim, depth=count, heads=heads, tubelet=tubelet, patch=patch, channels=channels,
        decoder=_decoder_spec(state, dim, tubelet, patch, channels, options, notes),
        mlp_ratio=_mlp_ratio(state, "encoder.blocks.", dim), norm_eps=norm_eps,
        final_norm="encoder.norm.weight" in state,
        pool_norm_eps=option(options, "pool_norm_eps", float, norm_eps, LAYOUT) if "fc_norm.weight" in state else None,
        bias=qkv_bias_style(state, "encoder.blocks."),
        encoder_only=not has_decoder(state), norm_target=option(options, "norm_target", bool, True, LAYOUT),
        mean=mean, std=std, masking=masking, mask_ratio=option(options, "mask_ratio", float, 0.9, LAYOUT),
        decoder_ratio=option(options, "decoder_ratio", float, 0.5, LAYOUT), notes=notes)


def metadata(spec: VideoMAESpec, source: str, **extra) -> dict:
    return {"source": source, "encoder_only": spec.encoder_only, "notes": spec.notes,
            "tokenizer": {"tubelet": spec.tubelet, "patch": spec.patch, "channels": spec.channels,
                          "mean": list(spec.mean), "std": list(spec.std)}, **extra}


def convert(state: dict[str, torch.Tensor], options: dict) -> Converted:
    """An official v1/v2 pretraining or fine-tuned state dict -> mmmae (see the module docstring)."""
    dropped: list[str] = []
    state = {k.removeprefix("backbone."): v for k, v in state.items()}
    layout = "pretraining"
    if "encoder.patch_embed.proj.weight" not in state and "patch_embed.proj.weight" in state:
        state, dropped = fine_tuned_to_pretraining(state)
        layout = "fine-tuned"
    spec = infer_spec(state, options)
    if dropped:
        spec.notes.append(f"fine-tuned checkpoint: encoder only; dropped the classifier {dropped}")
    if layout == "fine-tuned" and spec.pool_norm_eps is None:
        spec.notes.append("fine-tuned without fc_norm: the source classifies its first token, mmmae's features "
                          "are the mean over tokens")
    source = f"{options.get('kind', 'videomae')} ({layout} layout)"
    return Converted(to_mmmae(state, spec, f"{LAYOUT} ({layout} layout)"), config_text(spec, source),
                     metadata(spec, source, dropped_keys=dropped))
