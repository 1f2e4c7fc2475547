"""Converters from other frameworks' checkpoints to mmmae pretrained directories.

`mmmae convert --from KIND --src PATH --dst DIR [--allow_pickle] [--option key=value ...]`
runs `convert_checkpoint`. Each converter module has `convert(state_dict, options) -> Converted`
(see docs/converters.md for the key mappings and the numerical-parity tests).
"""

import importlib
from pathlib import Path

CONVERTERS = {"hf-videomae": "hf_videomae", "hf-vitmae": "hf_vitmae", "videomae": "videomae",
              "videomae-v2": "videomae", "mae-st": "mae_st", "audiomae": "audiomae"}


def convert(kind: str, src: str | Path, allow_pickle: bool = False, options: dict | None = None):
    """The `Converted` (state dict, gin config, metadata) of checkpoint `src` read as `kind`.

    options: the source's config.json, overridden by these user options, plus "kind"."""
    from mmmae.zoo.convert.checkpoint_io import read_source

    if kind not in CONVERTERS:
        raise ValueError(f"unknown converter {kind!r}; known: {', '.join(CONVERTERS)}")
    state, source_config = read_source(src, allow_pickle=allow_pickle)
    module = importlib.import_module(f"mmmae.zoo.convert.{CONVERTERS[kind]}")
    converted = module.convert(state, {"kind": kind, **source_config, **(options or {})})
    converted.metadata.setdefault("converted_from", {"kind": kind, "path": str(src)})
    return converted


def convert_checkpoint(kind: str, src: str | Path, dst: str | Path, allow_pickle: bool = False,
                       options: dict | None = None) -> Path:
    """Convert checkpoint `src` (read as `kind`) into the pretrained directory `dst`; returns dst.

    The converted weights must load into the model the converted config builds: every key
    matches (decoder keys may be absent for an encoder-only source) or this raises listing them.
    """
    from mmmae.zoo.pretrained import PRETRAINING_ONLY, build_model, save_pretrained

    converted = convert(kind, src, allow_pickle, options)
    encoder_only = bool(converted.metadata.get("encoder_only", False))
    model = build_model(converted.config)
    missing, unexpected = model.load_state_dict(converted.state_dict, strict=False)
    if encoder_only:
        missing = [k for k in missing if not PRETRAINING_ONLY.search(k)]
    if missing or unexpected:
        raise ValueError(f"{kind} converter produced weights that do not fit its config ({src}): "
                         f"missing keys {sorted(missing)}, unexpected keys {sorted(unexpected)}")
    return save_pretrained(model.eval(), dst, converted.config, converted.metadata, encoder_only=encoder_only)
