"""What a converter returns, and how it reads its options.

Options are the source's config.json merged with the user's `--option key=value` overrides, so
a value may arrive typed (from JSON) or as a string (from the command line); `option` accepts both.
"""

from dataclasses import dataclass, field

import torch

_MISSING = object()
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass
class Converted:
    """state_dict: keys of `MaskedAutoencoder.state_dict()` (encoder keys only when
    metadata["encoder_only"]); config: gin text that alone builds that model; metadata: what
    mmmae.json records (source, notes on guessed values, dropped keys, encoder_only)."""

    state_dict: dict[str, torch.Tensor]
    config: str
    metadata: dict = field(default_factory=dict)


def _coerce(key: str, value, kind: type):
    if kind is bool:
        if isinstance(value, bool):
            return value
        if str(value).strip().lower() in _TRUE + _FALSE:
            return str(value).strip().lower() in _TRUE
        raise ValueError(f"option {key}={value!r}: expected a boolean (true/false)")
    if kind is tuple:
        items = value.strip("()[] ").split(",") if isinstance(value, str) else list(value)
        try:
            return tuple(float(item) for item in items if str(item).strip())
        except ValueError:
            raise ValueError(f"option {key}={value!r}: expected numbers separated by commas") from None
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"option {key}={value!r}: expected {kind.__name__}") from None
    if kind is int and isinstance(value, float) and number != value:
        raise ValueError(f"option {key}={value!r}: expected an integer")
    return number


def option(options: dict, key: str, kind: type, default=_MISSING, layout: str = "converter"):
    """options[key] as `kind` (int, float, bool, str or tuple of floats), or `default`; a missing
    option without a default is a ValueError that says how to pass it."""
    if key not in options or options[key] is None:
        if default is _MISSING:
            raise ValueError(f"{layout}: cannot infer {key!r} from the checkpoint; pass --option {key}=...")
        return default
    return _coerce(key, options[key], kind)


def gin_lines(bindings: dict) -> list[str]:
    """{'scope/Name.param': value} -> gin binding lines; lists and tuples written as tuples."""
    return [f"{key} = {repr(tuple(v)) if isinstance(v, (tuple, list)) else repr(v)}" for key, v in bindings.items()]


def single_modality_model(name: str, tokenizer: str, masker: str) -> list[str]:
    """Gin lines composing a MaskedAutoencoder of one modality `name` (its bindings scoped
    `name/`): the tokenizer and masker configurables named, a MaskTokenDecoder, a Reconstruction."""
    return [
        f"{name}/Modality.tokenizer = @{name}/{tokenizer}()",
        f"{name}/Modality.masker = @{name}/{masker}()",
        f"{name}/Modality.decoder = @{name}/MaskTokenDecoder",
        "MaskedAutoencoder.encoder = @Encoder",
        f"MaskedAutoencoder.modalities = [@{name}/Modality()]",
        f"MaskedAutoencoder.objectives = [@{name}/Reconstruction()]",
        "pretrain.model = @MaskedAutoencoder",
    ]
