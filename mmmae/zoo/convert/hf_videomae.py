"""Hugging Face transformers VideoMAE (VideoMAEForPreTraining, VideoMAEModel,
VideoMAEForVideoClassification) -> mmmae, by way of the official layout (videomae.py).

HF key (after an optional `videomae.` prefix)            official key
    embeddings.patch_embeddings.projection.*                 encoder.patch_embed.proj.*
    encoder.layer.{i}.attention.attention.{query,key,value}.weight -> encoder.blocks.{i}.attn.qkv.weight (q; k; v)
    ....attention.attention.{query,value}.bias (older files: q_bias, v_bias) -> attn.q_bias, attn.v_bias
    ....attention.output.dense / intermediate.dense / output.dense -> attn.proj / mlp.fc1 / mlp.fc2
    ....layernorm_before / layernorm_after                   norm1 / norm2
    layernorm (only with use_mean_pooling=False)             encoder.norm
    decoder.decoder_layers.{j}.*                             decoder.blocks.{j}.*
    encoder_to_decoder, mask_token, decoder.norm, decoder.head: unchanged
    fc_norm (video classification with use_mean_pooling): unchanged, then the encoder's pool norm
    classifier (video classification): dropped, listed in the metadata.

Config: sizes and heads from config.json; blocks' LayerNorm eps `layer_norm_eps` (HF default
1e-12), the decoder's last norm and fc_norm torch's default 1e-5; targets normalised per
`norm_pix_loss`. The classifier's input, fc_norm(mean over tokens), is the converted model's
pooled feature (`model.features`).
HF models take pixels already standardised by the processor (ImageNet mean/std for the released
models); the converted tokenizer takes [0, 1] pixels and standardises them with the processor's
image_mean/image_std when the source folder has a processor config, else ImageNet's.
"""

import torch

from mmmae.zoo.convert.checkpoint_io import check_keys
from mmmae.zoo.convert.converted import Converted, option
from mmmae.zoo.convert.videomae import config_text, infer_spec, metadata, to_mmmae
from mmmae.zoo.convert.vit_keys import depth

LAYOUT = "HF VideoMAE checkpoint"
HF_DECODER_FINAL_NORM_EPS = 1e-5  # VideoMAEDecoder.norm = nn.LayerNorm(decoder_hidden_size)
HF_FC_NORM_EPS = 1e-5  # VideoMAEForVideoClassification.fc_norm = nn.LayerNorm(hidden_size)
RENAMED = {"attention.output.dense": "attn.proj", "intermediate.dense": "mlp.fc1", "output.dense": "mlp.fc2",
           "layernorm_before": "norm1", "layernorm_after": "norm2"}
DROPPED = ("classifier.",)


def _bias_style(state: dict, prefix: str, options: dict) -> str:
    """'legacy' (q_bias / v_bias), 'split' (query.bias / value.bias) or 'none' (qv_bias false)."""
    if f"{prefix}0.attention.attention.q_bias" in state:
        return "legacy"
    with_bias = option(options, "qv_bias", bool, option(options, "qkv_bias", bool, True, LAYOUT), LAYOUT)
    return "split" if with_bias else "none"


def layer_keys(prefix: str, count: int, bias: str) -> list[str]:
    """The keys of `count` HF VideoMAE layers under `prefix` with bias style `bias`."""
    keys = []
    for i in range(count):
        attn = f"{prefix}{i}.attention.attention."
        keys += [f"{prefix}{i}.{name}.{p}" for name in RENAMED for p in ("weight", "bias")]
        keys += [f"{attn}{name}.weight" for name in ("query", "key", "value")]
        keys += {"legacy": [f"{attn}q_bias", f"{attn}v_bias"], "split": [f"{attn}query.bias", f"{attn}value.bias"],
                 "none": []}[bias]
    return keys


def hf_keys(state: dict, options: dict, classifier: bool = False) -> tuple[list[str], dict]:
    """The keys the HF state dict should have (after the `videomae.` prefix is stripped and,
    for a `classifier`, the classifier keys dropped), and (depths, bias styles, final norm,
    fc_norm) read off the config or, without one, the keys."""
    depths = {"encoder": option(options, "num_hidden_layers", int, depth(state, "encoder.layer."), LAYOUT)}
    pooled = option(options, "use_mean_pooling", bool, "layernorm.weight" not in state, LAYOUT)
    layout = {"final_norm": not pooled, "bias": _bias_style(state, "encoder.layer.", options)}
    keys = ["embeddings.patch_embeddings.projection.weight", "embeddings.patch_embeddings.projection.bias"]
    keys += layer_keys("encoder.layer.", depths["encoder"], layout["bias"])
    keys += ["layernorm.weight", "layernorm.bias"] if layout["final_norm"] else []
    layout["fc_norm"] = pooled and (classifier or "fc_norm.weight" in state)
    keys += ["fc_norm.weight", "fc_norm.bias"] if layout["fc_norm"] else []
    if any(k.startswith(("decoder.", "encoder_to_decoder.")) or k == "mask_token" for k in state):
        depths["decoder"] = option(options, "decoder_num_hidden_layers", int, depth(state, "decoder.decoder_layers."),
                                   LAYOUT)
        layout["decoder_bias"] = _bias_style(state, "decoder.decoder_layers.", options)
        keys += ["encoder_to_decoder.weight", "mask_token", "decoder.norm.weight", "decoder.norm.bias",
                 "decoder.head.weight", "decoder.head.bias"]
        keys += layer_keys("decoder.decoder_layers.", depths["decoder"], layout["decoder_bias"])
    return keys, {**layout, "depths": depths}


def _official_layers(state: dict, src: str, dst: str, count: int, bias: str) -> dict[str, torch.Tensor]:
    out = {}
    for i in range(count):
        attn = f"{src}{i}.attention.attention."
        out |= {f"{dst}{i}.{new}.{p}": state[f"{src}{i}.{old}.{p}"] for old, new in RENAMED.items()
                for p in ("weight", "bias")}
        out[f"{dst}{i}.attn.qkv.weight"] = torch.cat([state[f"{attn}{n}.weight"] for n in ("query", "key", "value")])
        if bias != "none":
            q, v = ("q_bias", "v_bias") if bias == "legacy" else ("query.bias", "value.bias")
            out[f"{dst}{i}.attn.q_bias"], out[f"{dst}{i}.attn.v_bias"] = state[f"{attn}{q}"], state[f"{attn}{v}"]
    return out


def to_official(state: dict[str, torch.Tensor], options: dict) -> tuple[dict[str, torch.Tensor], list[str]]:
    """HF keys -> the official pretraining layout (the inverse of HF's conversion script), and the
    dropped classification keys. A missing or unexpected key is an error listing them all."""
    state = {k.removeprefix("videomae."): v for k, v in state.items()}
    dropped = sorted(k for k in state if k.startswith(DROPPED))
    state = {k: v for k, v in state.items() if k not in dropped}
    expected, layout = hf_keys(state, options, classifier=bool(dropped))
    check_keys(state, expected, LAYOUT)
    out = {"encoder.patch_embed.proj.weight": state["embeddings.patch_embeddings.projection.weight"],
           "encoder.patch_embed.proj.bias": state["embeddings.patch_embeddings.projection.bias"]}
    out |= _official_layers(state, "encoder.layer.", "encoder.blocks.", layout["depths"]["encoder"], layout["bias"])
    if layout["final_norm"]:
        out |= {f"encoder.norm.{p}": state[f"layernorm.{p}"] for p in ("weight", "bias")}
    if layout["fc_norm"]:
        out |= {f"fc_norm.{p}": state[f"fc_norm.{p}"] for p in ("weight", "bias")}
    if "decoder" in layout["depths"]:
        out |= {k: state[k] for k in ("encoder_to_decoder.weight", "mask_token", "decoder.norm.weight",
                                      "decoder.norm.bias", "decoder.head.weight", "decoder.head.bias")}
        out |= _official_layers(state, "decoder.decoder_layers.", "decoder.blocks.", layout["depths"]["decoder"],
                                layout["decoder_bias"])
    return out, dropped


def _spec_options(options: dict) -> dict:
    """HF config names -> the official converter's options (the user's own options win)."""
    if option(options, "hidden_act", str, "gelu", LAYOUT) != "gelu":
        raise ValueError(f"{LAYOUT}: hidden_act={options['hidden_act']!r}; mmmae blocks use exact GELU only")
    renamed = {"heads": "num_attention_heads", "decoder_heads": "decoder_num_attention_heads",
               "norm_eps": "layer_norm_eps", "norm_target": "norm_pix_loss", "decoder_dim": "decoder_hidden_size",
               "decoder_depth": "decoder_num_hidden_layers"}
    defaults = {"norm_eps": 1e-12, "norm_target": True}  # VideoMAEConfig's defaults
    out = dict(options)
    for ours, theirs in renamed.items():
        if out.get(ours) is None:
            out[ours] = options.get(theirs, defaults.get(ours))
    if out.get("pool_norm_eps") is None:
        out["pool_norm_eps"] = HF_FC_NORM_EPS
    return out


def _check_config(spec, options: dict) -> None:
    """The config's tubelet / patch / channels / widths against the weights' shapes."""
    pairs = {"tubelet_size": spec.tubelet, "patch_size": spec.patch, "num_channels": spec.channels,
             "hidden_size": spec.dim}
    if not spec.encoder_only:
        pairs["decoder_hidden_size"] = spec.decoder.dim
    for key, found in pairs.items():
        if key in options and option(options, key, int, None, LAYOUT) != found:
            raise ValueError(f"{LAYOUT}: config.json says {key}={options[key]} but the weights have {found}")


def convert(state: dict[str, torch.Tensor], options: dict) -> Converted:
    """An HF VideoMAE state dict and its config.json (merged with user options) -> mmmae."""
    official, dropped = to_official(state, options)
    spec_options = _spec_options(options)
    spec = infer_spec(official, spec_options)
    _check_config(spec, options)
    spec.decoder.final_norm_eps = HF_DECODER_FINAL_NORM_EPS
    if dropped:
        spec.notes.append(f"classification checkpoint: encoder only; dropped {dropped}")
    if dropped and spec.pool_norm_eps is None:
        spec.notes.append("use_mean_pooling=False: the source classifies its first token, mmmae's features are the "
                          "mean over tokens")
    guessed = "VideoMAEForVideoClassification" if dropped else "VideoMAEModel" if spec.encoder_only else \
        "VideoMAEForPreTraining"
    source = f"Hugging Face {', '.join(options.get('architectures') or [guessed])}"
    extra = {key: options[key] for key in ("image_size", "num_frames", "_name_or_path") if key in options}
    return Converted(to_mmmae(official, spec, LAYOUT), config_text(spec, source),
                     metadata(spec, source, dropped_keys=dropped, source_config=extra))
