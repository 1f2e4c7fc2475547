"""Register a pretrained folder under model_zoo/ in model_zoo/registry.json (maintainers).

    mmmae export --src runs/X --dst model_zoo/NAME --dtype float16 --description "..."
    python tools/zoo_register.py NAME --recipe recipes/X.gin --eval_gin eval/knn.gin ...

evaluates the folder as shipped (its own config's evaluations, plus each --eval_gin file, on
the stored weights and at random initialisation), writes the measured metrics into its
mmmae.json and model card, then records the sha256 of every file, its description, recipe
and metrics in the registry, so `mmmae zoo download NAME` can verify it.
"""

import argparse
import json
from pathlib import Path

import torch

from mmmae.eval.evaluate import evaluate_run
from mmmae.eval.report import flat_metrics
from mmmae.zoo.pretrained import from_pretrained, locate, save_pretrained
from mmmae.zoo.registry import ZOO_DIR, sha256

STORAGE_KEYS = ("format", "version", "mmmae_version", "encoder_only", "stored_dtype")


def measure(folder: Path, eval_gins: list[str]) -> dict:
    """Metrics of the folder's weights: its config's evaluations, then each gin file's, with random init."""
    metrics = flat_metrics(evaluate_run(str(folder), random_init=True))
    for gin_file in eval_gins:
        metrics.update(flat_metrics(evaluate_run(str(folder), [gin_file], ["evaluations.probes = []",
                                                                           "evaluations.retrievals = []"],
                                                 random_init=True)))
    return metrics


def rewrite_metrics(folder: Path, metrics: dict) -> None:
    """Save the folder again with `metrics` in its metadata (same weights, dtype and keys)."""
    files = locate(folder)
    metadata = {k: v for k, v in files.metadata.items() if k not in STORAGE_KEYS} | {"metrics": metrics}
    dtype = getattr(torch, files.metadata.get("stored_dtype", "float32"))
    save_pretrained(from_pretrained(folder), folder, files.config.read_text(), metadata,
                    files.metadata.get("encoder_only", False), dtype)


def register(name: str, recipe: str, registry: Path = ZOO_DIR / "registry.json") -> dict:
    folder = registry.parent / name
    metadata = json.loads((folder / "mmmae.json").read_text())
    entry = {"description": metadata.get("description", name), "source": name, "recipe": recipe,
             "files": {p.name: sha256(p) for p in sorted(folder.iterdir()) if p.is_file()},
             "metrics": metadata.get("metrics", {})}
    entries = json.loads(registry.read_text()) if registry.is_file() else {}
    entries[name] = entry
    registry.write_text(json.dumps(entries, indent=2) + "\n")
    return entry


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="a folder in model_zoo/")
    parser.add_argument("--recipe", required=True, help="the gin recipe that trained it")
    parser.add_argument("--eval_gin", action="append", default=[], help="more evaluations to measure (repeatable)")
    args = parser.parse_args()
    folder = ZOO_DIR / args.name
    rewrite_metrics(folder, measure(folder, args.eval_gin))
    print(json.dumps(register(args.name, args.recipe), indent=2))
