"""Evaluations from gin, on the trained and a freshly seeded model, and for a run directory."""

from pathlib import Path

import gin
import pytest
import torch
from safetensors.torch import save_model

from mmmae.config import ConfigError, parse_config
from mmmae.eval.evaluate import evaluate_run, evaluations, run_evaluations
from mmmae.eval.linear_probe import LinearProbe
from mmmae.eval.retrieval import Retrieval
from mmmae.model import MaskedAutoencoder
from tests.conftest import MICRO_GIN
from tests.eval.fake_model import FakeModality, FakeModel

MICRO_OVERRIDES = str(Path(__file__).parents[1] / "fixtures" / "micro_overrides.gin")


def test_evaluations_lists_the_bound_probes_then_retrievals():
    parse_config([], ["evaluations.probes = [@LinearProbe(), @audio/LinearProbe()]",
                      "audio/LinearProbe.modality = 'audio'", "evaluations.retrievals = [@Retrieval()]",
                      "Retrieval.pairs = [['video', 'audio']]"])
    with gin.unlock_config():
        for binding in ("LinearProbe.train_data", "LinearProbe.test_data", "Retrieval.data"):
            gin.bind_parameter(binding, [])
    probes_and_retrievals = evaluations()
    assert [type(t) for t in probes_and_retrievals] == [LinearProbe, LinearProbe, Retrieval]
    assert [t.modality for t in probes_and_retrievals[:2]] == ["video", "audio"]
    assert "evaluations.probes = [@LinearProbe(), @audio/LinearProbe()]" in gin.operative_config_str()


class DrawingTask:
    """An evaluation that reports the model's scale and draws from torch's RNG as data loading does."""

    kind = "scale"

    def __call__(self, model) -> dict:
        torch.rand(3)
        return {"scale": model.scale.item()}


def test_the_fresh_model_runs_every_task_too():
    model, fresh = FakeModel({"video": FakeModality()}), FakeModel({"video": FakeModality()})
    fresh.scale.data = torch.tensor(0.5)
    entries = run_evaluations(model, [DrawingTask(), DrawingTask()], fresh)
    assert entries == [{"kind": "scale", "pretrained": {"scale": 1.0}, "random_init": {"scale": 0.5}}] * 2
    assert run_evaluations(model, [DrawingTask()]) == [{"kind": "scale", "pretrained": {"scale": 1.0}}]


@pytest.fixture
def micro_run(tmp_path):
    """A run directory with the micro config (video only, no evaluations) and untrained weights."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.gin").write_text(f"include '{MICRO_GIN}'\npretrain.seed = 5\n")
    parse_config([MICRO_GIN])
    save_model(MaskedAutoencoder(), str(run_dir / "model.safetensors"))
    gin.clear_config()
    return run_dir


def test_evaluate_run_runs_the_bound_evaluations(micro_run):
    summary = evaluate_run(micro_run, gin_params=["evaluations.probes = [@LinearProbe(), @LinearProbe()]"],
                           random_init=True)
    assert summary["run_dir"] == str(micro_run)
    first, second = summary["evaluations"]
    assert first == second  # the same probe twice, on the same weights and the same seeded fresh model
    assert first["kind"] == "linear_probe" and first["pretrained"]["modality"] == "video"
    assert first["pretrained"]["test_samples"] == 20 and "random_init" in first


def test_evaluate_run_without_evaluations_says_what_to_bind(micro_run):
    with pytest.raises(ConfigError, match="configures no evaluation: bind evaluations.probes"):
        evaluate_run(micro_run)


def test_evaluate_run_retrieves_and_probes_every_modality_of_the_multimodal_quickstart(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = ["recipes/quickstart.gin", MICRO_OVERRIDES]
    (run_dir / "config.gin").write_text("".join(f"include '{f}'\n" for f in config) + "pretrain.seed = 0\n")
    parse_config(config)
    save_model(MaskedAutoencoder(), str(run_dir / "model.safetensors"))
    gin.clear_config()
    summary = evaluate_run(run_dir, gin_params=[
        "probe_train/MovingDigits.num_samples = 12", "probe_test/MovingDigits.num_samples = 8",
        "imu/LinearProbe.modality = 'imu'", "text/LinearProbe.modality = 'text'",
        "evaluations.probes = [@imu/LinearProbe(), @text/LinearProbe()]",
        "evaluations.retrievals = [@Retrieval()]", "Retrieval.data = @probe_test/MovingDigits()",
        "Retrieval.pairs = [['audio', 'video'], ['audio', 'imu']]",
    ])
    imu, text, retrieval = summary["evaluations"]
    assert (imu["pretrained"]["modality"], text["pretrained"]["modality"]) == ("imu", "text")
    pairs = retrieval["pretrained"]
    assert pairs["audio-video"]["embedding"] == "contrastive_video_audio"
    assert pairs["audio-imu"]["embedding"] == "mean_pooled"
    assert pairs["audio-imu"]["num_samples"] == 8 and 0 <= pairs["audio-imu"]["imu->audio"]["R@1"] <= 1
