"""The models that ship in model_zoo/: registered with the right hashes, loadable by name, and as measured."""

import pytest
import torch

from mmmae.zoo.pretrained import from_pretrained
from mmmae.zoo.registry import Registry


@pytest.fixture
def shipped(tmp_path, monkeypatch) -> Registry:
    monkeypatch.delenv("MMMAE_ZOO_REGISTRY", raising=False)
    monkeypatch.setenv("MMMAE_CACHE", str(tmp_path / "cache"))
    return Registry.load()


def test_every_shipped_file_matches_its_registered_sha256(shipped):
    assert {"tiny-video-movingdigits", "tiny-multimodal-movingdigits"} <= set(shipped.models)
    for name, entry in shipped.models.items():
        assert shipped.check(name, shipped.path.parent / entry.source) == [], name
        assert entry.metrics, f"{name} has no measured metrics"


def test_a_shipped_model_loads_by_name_and_encodes_other_clip_sizes(shipped):
    model = from_pretrained("tiny-video-movingdigits")
    assert not model.training and next(model.parameters()).dtype == torch.float32
    clips = torch.rand(2, 3, 8, 16, 16, generator=torch.Generator().manual_seed(0))
    assert model.features({"video": clips}, "video").shape == (2, 192)
    tokens, _ = model.encode({"video": torch.rand(1, 3, 16, 32, 32)}, "video")
    assert tokens.shape == (1, 8 * 8 * 8, 192)


def test_the_multimodal_model_takes_longer_audio_through_a_binding_override(shipped):
    model = from_pretrained("tiny-multimodal-movingdigits", ["audio/AudioTokenizer.target_length = 192"])
    one_second, _ = from_pretrained("tiny-multimodal-movingdigits").encode({"audio": torch.randn(1, 16000)}, "audio")
    two_seconds, _ = model.encode({"audio": torch.randn(1, 32000)}, "audio")
    assert two_seconds.shape[1] == 2 * one_second.shape[1]
