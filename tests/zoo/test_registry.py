import json
from pathlib import Path

import pytest
import torch

from mmmae.zoo.pretrained import build_model, from_pretrained, save_pretrained
from mmmae.zoo.registry import Registry, sha256
from tests.conftest import MICRO_GIN


@pytest.fixture
def zoo(tmp_path, monkeypatch) -> Path:
    """A registry with one micro model shipped as a folder next to it; an empty cache."""
    torch.manual_seed(0)
    config = Path(MICRO_GIN).read_text()
    root = tmp_path / "zoo"
    folder = save_pretrained(build_model(config), root / "micro", config)
    files = {p.name: sha256(p) for p in sorted(folder.iterdir())}
    (root / "registry.json").write_text(json.dumps({"micro": {
        "description": "a micro model", "source": "micro", "files": files, "recipe": "tests/fixtures/micro.gin",
        "metrics": {"probe": 0.5}}}))
    monkeypatch.setenv("MMMAE_ZOO_REGISTRY", str(root / "registry.json"))
    monkeypatch.setenv("MMMAE_CACHE", str(tmp_path / "cache"))
    return root


def test_fetch_copies_verifies_and_loads_by_name(zoo, tmp_path):
    registry = Registry.load()
    folder = registry.fetch("micro")
    assert folder.parent == tmp_path / "cache" / "zoo" / "micro"
    assert registry.check("micro", folder) == []
    model = from_pretrained("micro")
    reference = from_pretrained(zoo / "micro")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reference.state_dict().values()))


def test_a_tampered_source_is_refused_and_nothing_is_cached(zoo, tmp_path):
    weights = zoo / "micro" / "model.safetensors"
    expected = sha256(weights)
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError,
                       match=rf"model.safetensors: sha256 {sha256(weights)}, the registry .* expects {expected}"):
        Registry.load().fetch("micro")
    assert not (tmp_path / "cache" / "zoo" / "micro").exists()
    assert [p.name for p in (tmp_path / "cache" / "zoo").iterdir()] == []


def test_a_cached_file_tampered_after_download_is_refused_on_use(zoo, tmp_path):
    folder = Registry.load().fetch("micro")
    (folder / "config.gin").write_text("ENC_DIM = 64\n")
    with pytest.raises(ValueError, match="config.gin: sha256 .* expects"):
        from_pretrained("micro")


def test_re_registered_weights_get_a_fresh_cache_folder(zoo, tmp_path):
    old = Registry.load().fetch("micro")
    config = zoo / "micro" / "config.gin"
    config.write_text(config.read_text() + "# retrained\n")
    registry_file = zoo / "registry.json"
    entries = json.loads(registry_file.read_text())
    entries["micro"]["files"]["config.gin"] = sha256(config)
    registry_file.write_text(json.dumps(entries))
    new = Registry.load().fetch("micro")
    assert new != old and new.parent == old.parent
    assert (new / "config.gin").read_text().endswith("# retrained\n")
    assert Registry.load().check("micro", new) == []


def test_a_missing_file_is_named(zoo):
    (zoo / "micro" / "mmmae.json").unlink()
    with pytest.raises(FileNotFoundError, match="mmmae.json"):
        Registry.load().fetch("micro")


def test_unknown_names_and_malformed_entries_are_named(zoo):
    with pytest.raises(KeyError, match="no model 'absent' in the zoo .*known: micro"):
        Registry.load().entry("absent")
    (zoo / "registry.json").write_text(json.dumps({"bad": {"source": "x"}}))
    with pytest.raises(ValueError, match=r"entry 'bad' lacks \['description', 'files', 'recipe'\]"):
        Registry.load()
    (zoo / "registry.json").write_text("{not json")
    with pytest.raises(ValueError, match="registry.json"):
        Registry.load()


def _registry_with_source(zoo: Path, source: str) -> None:
    raw = json.loads((zoo / "registry.json").read_text())
    raw["micro"]["source"] = source
    (zoo / "registry.json").write_text(json.dumps(raw))


def test_an_https_source_is_downloaded_and_verified(zoo, tmp_path):
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(zoo / "micro"))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        _registry_with_source(zoo, f"http://127.0.0.1:{server.server_port}/")
        folder = Registry.load().fetch("micro")
    finally:
        server.shutdown()
    assert folder.parent == tmp_path / "cache" / "zoo" / "micro" and Registry.load().check("micro", folder) == []


def test_an_hf_source_is_read_through_the_hub_cache_offline(zoo, tmp_path, monkeypatch):
    import shutil

    import huggingface_hub.constants as hub_constants

    revision = "1" * 40
    repo = tmp_path / "hub" / "models--someone--micro"
    shutil.copytree(zoo / "micro", repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    _registry_with_source(zoo, "hf://someone/micro")
    folder = Registry.load().fetch("micro")
    assert Registry.load().check("micro", folder) == []
