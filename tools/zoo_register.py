"""Register a pretrained folder under model_zoo/ in model_zoo/registry.json (maintainers).

    mmmae export --src runs/X --dst model_zoo/NAME --dtype float16 --description "..."
    python tools/zoo_register.py NAME --recipe recipes/X.gin

records the sha256 of every file of model_zoo/NAME, its description and the metrics its
mmmae.json carries (from the run's summary), so `mmmae zoo download NAME` can verify it.
"""

import argparse
import json
from pathlib import Path

from mmmae.zoo.registry import ZOO_DIR, sha256


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
    args = parser.parse_args()
    print(json.dumps(register(args.name, args.recipe), indent=2))
