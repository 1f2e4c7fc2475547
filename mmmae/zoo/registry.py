"""The model zoo: named weights with their source, sha256 per file, recipe and measured metrics.

The registry is `model_zoo/registry.json` (override with MMMAE_ZOO_REGISTRY); each entry is

    {"description": str, "source": "<folder next to the registry> | https://... | hf://org/repo",
     "files": {"model.safetensors": "<sha256>", "config.gin": "<sha256>", ...},
     "recipe": "recipes/....gin", "metrics": {...}}

`fetch` copies or downloads an entry's files into the cache (MMMAE_CACHE, default
~/.cache/mmmae/zoo/<name>/<revision>, one folder per registered set of files) and checks every
file's sha256 before the model is used, then again on every later use; a mismatch or an
unreadable file is refused with the path and both hashes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ZOO_DIR = Path(__file__).resolve().parents[1] / "model_zoo"
REQUIRED_FIELDS = ("description", "source", "files", "recipe")


def sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def cache_root() -> Path:
    return Path(os.environ.get("MMMAE_CACHE", Path.home() / ".cache" / "mmmae")) / "zoo"


@dataclass(frozen=True)
class ZooEntry:
    name: str
    description: str
    source: str
    files: dict[str, str]
    recipe: str
    metrics: dict = field(default_factory=dict)


@dataclass
class Registry:
    path: Path
    models: dict[str, ZooEntry]

    @classmethod
    def load(cls, path: str | Path | None = None) -> Registry:
        """Read the registry; a malformed file or entry is named with the field at fault."""
        path = Path(path or os.environ.get("MMMAE_ZOO_REGISTRY", ZOO_DIR / "registry.json"))
        try:
            raw = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"model zoo registry {path}: {error}") from error
        models = {}
        for name, entry in raw.items():
            if missing := [f for f in REQUIRED_FIELDS if f not in entry]:
                raise ValueError(f"model zoo registry {path}: entry {name!r} lacks {missing}")
            models[name] = ZooEntry(name=name, **entry)
        return cls(path, models)

    def entry(self, name: str) -> ZooEntry:
        if name not in self.models:
            raise KeyError(f"no model {name!r} in the zoo {self.path} (known: {', '.join(self.models)})")
        return self.models[name]

    def cached(self, name: str) -> Path:
        """The cache folder of `name`'s registered files: cache_root/<name>/<revision>, the revision a
        hash of the registered sha256s, so re-registered weights never meet a stale copy."""
        files = sorted(self.entry(name).files.items())
        revision = hashlib.sha256(json.dumps(files).encode()).hexdigest()[:16]
        return cache_root() / name / revision

    def _copy_file(self, entry: ZooEntry, filename: str, target: Path) -> None:
        """Copy (local folder), download (https) or fetch from the Hub (hf://) one file of `entry`."""
        source = entry.source
        if source.startswith("hf://"):
            from huggingface_hub import hf_hub_download

            shutil.copyfile(hf_hub_download(source.removeprefix("hf://"), filename), target)
        elif source.startswith(("https://", "http://")):
            urllib.request.urlretrieve(f"{source.rstrip('/')}/{filename}", target)
        else:
            folder = Path(source) if Path(source).is_absolute() else self.path.parent / source
            shutil.copyfile(folder / filename, target)

    def check(self, name: str, folder: Path) -> list[tuple[str, str, str | None]]:
        """(file, expected, actual or None if absent) for every file of `name` in `folder` that does not match."""
        bad = []
        for filename, expected in self.entry(name).files.items():
            path = folder / filename
            actual = sha256(path) if path.is_file() else None
            if actual != expected:
                bad.append((filename, expected, actual))
        return bad

    def _refuse(self, name: str, folder: Path, bad: list[tuple[str, str, str | None]]) -> None:
        lines = [f"{folder / f}: sha256 {actual or '(missing)'}, the registry {self.path} expects {expected}"
                 for f, expected, actual in bad]
        raise ValueError(f"zoo model {name!r} refused, its files are not the registered ones "
                         f"(truncated or tampered?):\n" + "\n".join(lines))

    def fetch(self, name: str) -> Path:
        """The cached, verified folder of `name`, downloading it first if absent."""
        entry, target = self.entry(name), self.cached(name)
        if not target.is_dir():
            cache_root().mkdir(parents=True, exist_ok=True)
            partial = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=cache_root()))
            try:
                for filename in entry.files:
                    self._copy_file(entry, filename, partial / filename)
                if bad := self.check(name, partial):
                    self._refuse(name, partial, bad)
                partial.chmod(0o755)
                target.parent.mkdir(exist_ok=True)
                os.replace(partial, target)
            finally:
                shutil.rmtree(partial, ignore_errors=True)
        if bad := self.check(name, target):
            self._refuse(name, target, bad)
        return target
