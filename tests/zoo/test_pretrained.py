import copy
import json
from pathlib import Path

import gin
import pytest
import torch
from safetensors.torch import load_file

from mmmae.config import parse_config
from mmmae.model import MaskedAutoencoder
from mmmae.zoo.pretrained import (
    PRETRAINING_ONLY,
    build_model,
    encoder_state,
    from_pretrained,
    gin_config_kept,
    locate,
    push_to_hub,
    save_pretrained,
)
from tests.conftest import MICRO_GIN

MICRO_CONFIG = Path(MICRO_GIN).read_text()


@pytest.fixture
def micro_model() -> MaskedAutoencoder:
    torch.manual_seed(0)
    return build_model(MICRO_CONFIG)


def _clip(frames: int = 4, size: int = 16) -> dict:
    return {"video": torch.rand(2, 3, frames, size, size, generator=torch.Generator().manual_seed(1))}


def test_save_then_load_gives_the_same_features(micro_model, tmp_path):
    directory = save_pretrained(micro_model, tmp_path / "micro", MICRO_CONFIG, {"source": "test"})
    assert sorted(p.name for p in directory.iterdir()) == ["README.md", "config.gin", "mmmae.json", "model.safetensors"]
    loaded = from_pretrained(directory)
    assert not loaded.training
    torch.testing.assert_close(loaded.features(_clip(), "video"), micro_model.eval().features(_clip(), "video"),
                               rtol=0, atol=0)
    metadata = json.loads((directory / "mmmae.json").read_text())
    assert metadata["modalities"] == ["video"] and metadata["encoder"] == {"dim": 32, "depth": 2, "heads": 2}
    assert metadata["source"] == "test" and metadata["encoder_only"] is False


def test_a_loaded_model_runs_at_other_frame_counts_and_resolutions(micro_model, tmp_path):
    loaded = from_pretrained(save_pretrained(micro_model, tmp_path / "micro", MICRO_CONFIG))
    assert loaded.features(_clip(frames=8, size=32), "video").shape == (2, 32)


def test_encoder_only_export_leaves_out_decoders_and_loads(micro_model, tmp_path):
    directory = save_pretrained(micro_model, tmp_path / "enc", MICRO_CONFIG, encoder_only=True)
    keys = load_file(directory / "model.safetensors").keys()
    assert keys == encoder_state(micro_model).keys()
    assert not any(PRETRAINING_ONLY.search(k) for k in keys) and any(k.startswith("modalities.video.decoder.")
                                                                    for k in micro_model.state_dict())
    loaded = from_pretrained(directory)
    torch.testing.assert_close(loaded.features(_clip(), "video"), micro_model.eval().features(_clip(), "video"),
                               rtol=0, atol=0)


def test_float16_storage_halves_the_file_and_loads_back_as_float32(micro_model, tmp_path):
    full = save_pretrained(micro_model, tmp_path / "f32", MICRO_CONFIG)
    half = save_pretrained(micro_model, tmp_path / "f16", MICRO_CONFIG, dtype=torch.float16)
    ratio = (half / "model.safetensors").stat().st_size / (full / "model.safetensors").stat().st_size
    assert 0.45 < ratio < 0.6
    loaded = from_pretrained(half)
    assert next(loaded.parameters()).dtype == torch.float32
    # exact: the loaded model is the float32 model with its saved tensors rounded to float16, on the same kernels
    rounded = copy.deepcopy(micro_model).eval()
    with torch.no_grad():
        for tensor in rounded.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(tensor.half().float())
    torch.testing.assert_close(loaded.features(_clip(), "video"), rounded.features(_clip(), "video"), rtol=0, atol=0)


def test_saving_over_a_directory_replaces_it_whole(micro_model, tmp_path):
    directory = save_pretrained(micro_model, tmp_path / "m", MICRO_CONFIG, {"source": "first"})
    (directory / "stale.txt").write_text("x")
    save_pretrained(micro_model, directory, MICRO_CONFIG, {"source": "second"})
    assert not (directory / "stale.txt").exists()
    assert json.loads((directory / "mmmae.json").read_text())["source"] == "second"
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no partial or old folder left behind


def test_a_failed_save_leaves_the_previous_directory_untouched(micro_model, tmp_path, monkeypatch):
    directory = save_pretrained(micro_model, tmp_path / "m", MICRO_CONFIG, {"source": "first"})
    before = (directory / "model.safetensors").read_bytes()

    def broken_card(*args):
        raise RuntimeError("disk full")

    monkeypatch.setattr("mmmae.zoo.pretrained.model_card", broken_card)
    with pytest.raises(RuntimeError, match="disk full"):
        save_pretrained(micro_model, directory, MICRO_CONFIG, {"source": "second"})
    assert (directory / "model.safetensors").read_bytes() == before
    assert json.loads((directory / "mmmae.json").read_text())["source"] == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


def test_a_truncated_weight_file_is_refused_with_its_path(micro_model, tmp_path):
    directory = save_pretrained(micro_model, tmp_path / "m", MICRO_CONFIG)
    weights = directory / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ValueError, match="cannot read weights .*model.safetensors"):
        from_pretrained(directory)


def test_weights_that_do_not_match_the_config_list_the_keys(micro_model, tmp_path):
    directory = save_pretrained(micro_model, tmp_path / "m", MICRO_CONFIG)
    (directory / "config.gin").write_text(MICRO_CONFIG + "\nENC_DEPTH = 3\n")
    with pytest.raises(ValueError, match=r"missing keys \['encoder\.blocks\.2\..*unexpected keys \[\]"):
        from_pretrained(directory)


def test_a_run_directory_is_a_pretrained_directory(micro_model, tmp_path):
    from safetensors.torch import save_model

    run = tmp_path / "run"
    run.mkdir()
    save_model(micro_model, str(run / "model.safetensors"))
    (run / "config.gin").write_text(MICRO_CONFIG)
    files = locate(run)
    assert files.metadata == {} and files.weights == run / "model.safetensors"
    assert isinstance(from_pretrained(run), MaskedAutoencoder)


def test_locate_names_what_it_looked_for(tmp_path):
    with pytest.raises(FileNotFoundError, match="its weights model.safetensors is missing"):
        locate(tmp_path)
    with pytest.raises(FileNotFoundError, match="neither a directory nor a model-zoo name"):
        locate("no such model")


def test_a_missing_run_in_an_existing_folder_is_not_looked_up_on_the_hub(tmp_path, monkeypatch):
    (tmp_path / "runs").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)  # no network, even if the guard regressed
    monkeypatch.setattr("huggingface_hub.snapshot_download", lambda *a, **k: pytest.fail("asked the Hub"))
    with pytest.raises(FileNotFoundError, match=r"'runs/quickstart' is not a directory \(its folder 'runs' exists"):
        locate("runs/quickstart")


def test_a_hub_repo_id_loads_from_the_local_hub_cache_offline(micro_model, tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    revision = "0" * 40
    snapshot = cache / "models--someone--micro" / "snapshots" / revision
    save_pretrained(micro_model, snapshot, MICRO_CONFIG)
    (cache / "models--someone--micro" / "refs").mkdir()
    (cache / "models--someone--micro" / "refs" / "main").write_text(revision)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    loaded = from_pretrained("someone/micro")
    torch.testing.assert_close(loaded.features(_clip(), "video"), micro_model.eval().features(_clip(), "video"))
    with pytest.raises(FileNotFoundError, match="nor a Hub repo reachable here"):
        locate("someone/absent")


def test_push_to_hub_creates_the_repo_and_uploads_the_folder(micro_model, tmp_path, monkeypatch):
    calls = []

    class FakeApi:
        def __init__(self, token=None):
            calls.append(("token", token))

        def create_repo(self, repo_id, private, exist_ok):
            calls.append(("create", repo_id, private, exist_ok))

        def upload_folder(self, folder_path, repo_id):
            calls.append(("upload", sorted(p.name for p in Path(folder_path).iterdir()), repo_id))
            return "https://huggingface.co/someone/micro/commit/1"

    monkeypatch.setattr("huggingface_hub.HfApi", FakeApi)
    directory = save_pretrained(micro_model, tmp_path / "m", MICRO_CONFIG)
    assert push_to_hub(directory, "someone/micro", private=True).endswith("/commit/1")
    assert calls == [("token", None), ("create", "someone/micro", True, True),
                     ("upload", ["README.md", "config.gin", "mmmae.json", "model.safetensors"], "someone/micro")]
    with pytest.raises(FileNotFoundError):
        push_to_hub(tmp_path, "someone/empty")


def test_the_model_card_says_how_to_load_and_what_was_measured(micro_model, tmp_path):
    directory = save_pretrained(micro_model, tmp_path / "m", MICRO_CONFIG,
                                {"metrics": {"linear probe video accuracy": 0.75}, "recipe": "recipes/x.gin"})
    card = (directory / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: mmmae\n")
    assert 'mmmae.load_pretrained("m")' in card and "| linear probe video accuracy | 0.750 |" in card
    assert "- recipe: recipes/x.gin" in card and "ENC_DIM = 32" in card


def test_build_model_parses_a_config_file_too(tmp_path):
    path = tmp_path / "config.gin"
    path.write_text(MICRO_CONFIG)
    assert build_model(path).encoder.dim == 32


def test_the_package_exposes_load_pretrained(micro_model, tmp_path):
    import mmmae

    directory = mmmae.save_pretrained(micro_model, tmp_path / "m", MICRO_CONFIG)
    assert isinstance(mmmae.load_pretrained(directory), MaskedAutoencoder)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        mmmae.nothing  # noqa: B018


def test_a_model_built_inside_gin_config_kept_leaves_the_config_as_it_was():
    parse_config([MICRO_GIN], ["pretrain.steps = 7"])
    before = gin.operative_config_str(), gin.config_str()
    with gin.config_scope("video"), gin_config_kept():
        assert build_model(MICRO_CONFIG + "\nENC_DIM = 48").encoder.dim == 48
        assert gin.query_parameter("pretrain.steps") == 6
    assert (gin.operative_config_str(), gin.config_str()) == before
    assert gin.query_parameter("pretrain.steps") == 7 and gin.config_is_locked()
