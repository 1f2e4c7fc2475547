"""Start a model from another model's weights (`pretrain.init_from`, `mmmae train --init_from`).

The source is anything `mmmae.zoo.pretrained.locate` finds: a run directory, a pretrained folder
(converted checkpoints included), a model-zoo name or a Hub repo id. Every weight whose name and
shape match the model's is copied; the rest keep their initialisation and are reported.
"""

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from mmmae.zoo.pretrained import locate, read_weights

REPORT_FILE = "init_from.json"


@dataclass
class InitReport:
    """What `init_from` copied: `loaded` keys; `kept` keys of the model the source lacks (they keep
    their initialisation); `ignored` source keys the model lacks; `reshaped` {key: [source shape,
    model shape]} (kept at initialisation)."""

    source: str
    weights: str
    loaded: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    reshaped: dict[str, list[list[int]]] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """A short human report: counts, then the unmatched keys (at most 8 of each kind)."""
        lines = [f"init_from {self.source}: {len(self.loaded)} weights loaded from {self.weights}"]
        for what, keys in (("kept at initialisation (not in the source)", self.kept),
                           ("in the source but not in the model (ignored)", self.ignored),
                           ("of another shape (kept at initialisation)", list(self.reshaped))):
            if keys:
                shown = ", ".join(keys[:8]) + (f", ... ({len(keys) - 8} more)" if len(keys) > 8 else "")
                lines.append(f"  {len(keys)} {what}: {shown}")
        return lines

    def write(self, run_dir: Path) -> Path:
        path = run_dir / REPORT_FILE
        path.write_text(json.dumps(asdict(self), indent=2))
        return path


def load_matching_weights(model: torch.nn.Module, source: str) -> InitReport:
    """Copy into `model` every weight of `source` that matches by name and shape; returns the report.

    ValueError naming the source (and a few keys of each side) when no weight matches: the source
    is a model of another kind, and starting from it would silently train from scratch.
    """
    files = locate(source)
    stored = read_weights(files.weights)
    own = model.state_dict()
    report = InitReport(str(source), str(files.weights))
    matched = {}
    for key, value in stored.items():
        if key not in own:
            report.ignored.append(key)
        elif value.shape != own[key].shape:
            report.reshaped[key] = [list(value.shape), list(own[key].shape)]
        else:
            matched[key] = value
    report.kept = sorted(k for k in own if k not in stored)
    report.ignored.sort()
    if not matched:
        raise ValueError(f"init_from {source!r} ({files.weights}): no weight matches the model by name and shape "
                         f"(the source has {', '.join(sorted(stored)[:4])}, ...; the model {', '.join(sorted(own)[:4])}"
                         ", ...); give a run, pretrained folder or zoo model of the same architecture")
    with torch.no_grad():
        for key, value in matched.items():
            own[key].copy_(value)
    report.loaded = sorted(matched)
    return report
