"""The README.md model card of a pretrained directory, in Hugging Face Hub format (YAML front matter)."""

from __future__ import annotations

import json


def _metric_rows(metrics: dict) -> list[str]:
    return [f"| {name} | {value:.3f} |" if isinstance(value, float) else f"| {name} | {value} |"
            for name, value in metrics.items()]


def model_card(name: str, metadata: dict, config: str) -> str:
    """Markdown for `name` from its metadata (mmmae.json) and gin config: front matter, how to load it,
    what it was trained on, its measured metrics, and the config that rebuilds it."""
    modalities = metadata.get("modalities", [])
    front = ["---", "library_name: mmmae", "tags:", "- masked-autoencoder", *[f"- {m}" for m in modalities], "---"]
    encoder = metadata.get("encoder", {})
    lines = [
        *front, "", f"# {name}", "",
        metadata.get("description", f"A masked model over {', '.join(modalities)} built with mmmae."), "",
        "## Use", "", "```python", "import mmmae", "",
        f'model = mmmae.load_pretrained("{name}")  # or the path of this folder',
        f'features = model.features(batch, "{modalities[0] if modalities else "video"}")'
        "  # (B, D) pooled encoder features",
        "```", "",
        "## Model", "",
        f"- modalities: {', '.join(modalities)}",
        f"- encoder: width {encoder.get('dim')}, {encoder.get('depth')} blocks, {encoder.get('heads')} heads; "
        f"{metadata.get('parameters', 0):,} parameters",
        f"- weights: {'encoder only' if metadata.get('encoder_only') else 'encoder and decoders'}, "
        f"stored as {metadata.get('stored_dtype')}",
    ]
    for key, label in (("source", "source"), ("recipe", "recipe"), ("training_data", "training data")):
        if key in metadata:
            lines.append(f"- {label}: {metadata[key]}")
    if metrics := metadata.get("metrics"):
        lines += ["", "## Measured", "", "| metric | value |", "|---|---|", *_metric_rows(metrics)]
    extra = {k: v for k, v in metadata.items() if k in ("converted_from", "dropped_keys", "notes")}
    if extra:
        lines += ["", "## Notes", "", "```json", json.dumps(extra, indent=2), "```"]
    lines += ["", "## Config", "", "`config.gin` rebuilds the model:", "", "```", config.strip(), "```", ""]
    return "\n".join(lines)
