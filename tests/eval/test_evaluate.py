"""Evaluations from gin, on the trained and a freshly seeded model, for a run or pretrained directory;
the gin/eval files."""

from pathlib import Path

import gin
import pytest
import torch
from safetensors.torch import load_model, save_model

from mmmae.config import ConfigError, parse_config
from mmmae.data.moving_digits.dataset import MovingDigits
from mmmae.eval.attentive_probe import AttentiveProbe
from mmmae.eval.evaluate import evaluate_run, evaluations, run_evaluations
from mmmae.eval.finetune import FineTune
from mmmae.eval.knn import KNN
from mmmae.eval.linear_probe import LinearProbe
from mmmae.eval.retrieval import Retrieval
from mmmae.model import MaskedAutoencoder
from mmmae.zoo.pretrained import save_pretrained
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


def untrained_quickstart_run(tmp_path) -> Path:
    """A run directory of the micro-sized multimodal quickstart with its untrained weights."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = ["recipes/quickstart.gin", MICRO_OVERRIDES]
    (run_dir / "config.gin").write_text("".join(f"include '{f}'\n" for f in config) + "pretrain.seed = 0\n")
    parse_config(config)
    save_model(MaskedAutoencoder(), str(run_dir / "model.safetensors"))
    gin.clear_config()
    return run_dir


def test_evaluate_run_retrieves_and_probes_every_modality_of_the_multimodal_quickstart(tmp_path):
    run_dir = untrained_quickstart_run(tmp_path)
    summary = evaluate_run(run_dir, gin_params=[
        "probe_train/MovingDigits.num_samples = 12", "probe_test/MovingDigits.num_samples = 8",
        "imu/LinearProbe.modality = 'imu'", "text/LinearProbe.modality = 'text'",
        "evaluations.probes = [@imu/LinearProbe(), @text/LinearProbe()]", "evaluations.knn = []",
        "evaluations.retrievals = [@Retrieval()]", "Retrieval.data = @probe_test/MovingDigits()",
        "Retrieval.pairs = [['audio', 'video'], ['audio', 'imu']]",
    ])
    imu, text, retrieval = summary["evaluations"]
    assert (imu["pretrained"]["modality"], text["pretrained"]["modality"]) == ("imu", "text")
    pairs = retrieval["pretrained"]
    assert pairs["audio-video"]["embedding"] == "contrastive_video_audio"
    assert pairs["audio-imu"]["embedding"] == "mean_pooled"
    assert pairs["audio-imu"]["num_samples"] == 8 and 0 <= pairs["audio-imu"]["imu->audio"]["R@1"] <= 1


def test_evaluations_lists_every_kind_in_order():
    parse_config([], ["evaluations.probes = [@LinearProbe()]", "evaluations.retrievals = [@Retrieval()]",
                      "evaluations.attentive_probes = [@AttentiveProbe()]", "evaluations.knn = [@KNN()]",
                      "evaluations.finetunes = [@FineTune()]", "Retrieval.pairs = [['video', 'audio']]",
                      "FineTune.num_classes = 10"])
    with gin.unlock_config():
        for owner in ("LinearProbe", "AttentiveProbe", "KNN", "FineTune"):
            gin.bind_parameter(f"{owner}.train_data", [])
            gin.bind_parameter(f"{owner}.test_data", [])
        gin.bind_parameter("Retrieval.data", [])
    assert [type(t) for t in evaluations()] == [LinearProbe, AttentiveProbe, KNN, FineTune, Retrieval]


EVAL_FILES = {"linear_probe": LinearProbe, "attentive_probe": AttentiveProbe, "knn": KNN, "finetune": FineTune}


@pytest.mark.parametrize("name", sorted(EVAL_FILES))
def test_each_eval_file_adds_its_evaluation_on_the_configs_clips(name):
    # the recipe lists a linear probe (data/moving_digits.gin): cleared unless it is the one tested
    parse_config(["recipes/quickstart_video.gin", f"eval/{name}.gin"],
                 [] if name == "linear_probe" else ["evaluations.probes = []"])
    (task,) = evaluations()
    assert type(task) is EVAL_FILES[name] and task.modality == "video"
    train, test = task.train_data, task.test_data
    assert (train.split, test.split) == ("train", "test") and train.seed != test.seed
    assert (train.frames, train.size) == (8, 16)  # the recipe's clips, not moving_digits.gin's 16x64x64
    if name == "finetune":  # longer, larger test clips for multi-view testing
        assert (test.frames, test.size) == (12, 20) and task.test_clips * task.test_crops > 1
    else:
        assert (train.num_samples, test.num_samples) == (2048, 1024)


def test_eval_files_keep_the_clips_of_a_runs_operative_config(tmp_path):
    """A run's config.gin binds MovingDigits' sizes per scope (probe_train/..., probe_test/...), not globally."""
    parse_config([MICRO_GIN], ["evaluations.probes = [@LinearProbe()]"])
    MaskedAutoencoder(), evaluations()
    operative = tmp_path / "config.gin"
    operative.write_text(gin.operative_config_str())
    assert "\nMovingDigits.frames" not in operative.read_text()
    parse_config([str(operative), "eval/finetune.gin", "eval/knn.gin"])
    _, knn, finetune = evaluations()
    for data in (finetune.train_data, knn.train_data, knn.test_data):
        assert (data.frames, data.size, data.digit_size) == (4, 16, 8)
    assert (finetune.test_data.frames, finetune.test_data.size, finetune.test_data.digit_size) == (12, 20, 8)
    assert (finetune.train_data.num_samples, finetune.test_data.num_samples) == (1024, 256)
    assert (finetune.train_data.split, finetune.test_data.split) == ("train", "test")


PROBE_LABELS = {"video": "label", "audio": "direction", "imu": "speed_class"}
KNN_LABELS = {"video": "label", "audio": "direction", "imu": "direction"}


def test_the_modality_probes_file_builds_on_the_quickstart_a_probe_and_a_knn_per_modality():
    parse_config(["recipes/quickstart.gin", "eval/modality_probes.gin"])
    *probes_and_knn, retrieval = evaluations()
    assert [(type(t), t.modality, t.label) for t in probes_and_knn] == [
        *((LinearProbe, m, label) for m, label in PROBE_LABELS.items()),
        *((KNN, m, label) for m, label in KNN_LABELS.items())]
    assert isinstance(retrieval, Retrieval)  # the recipe's own evaluations stay
    with gin.config_scope("train"):
        pretraining = MovingDigits()
    geometry = ("frames", "size", "digit_size", "min_speed", "max_speed", "fps")
    for probe, knn in zip(probes_and_knn[:3], probes_and_knn[3:]):
        assert probe.train_data is knn.train_data and probe.test_data is knn.test_data  # one extraction for both
        assert probe.train_data.modalities == probe.test_data.modalities == (probe.modality,)
        train, test = probe.train_data, probe.test_data
        assert (train.split, train.num_samples, test.split, test.num_samples) == ("train", 2048, "test", 1024)
        for data in (train, test):  # the recipe's clips
            assert [getattr(data, name) for name in geometry] == [getattr(pretraining, name) for name in geometry]


def test_a_runs_operative_config_keeps_the_modality_probes_and_their_shared_clips(tmp_path):
    parse_config(["recipes/quickstart.gin", MICRO_OVERRIDES, "eval/modality_probes.gin"])
    MaskedAutoencoder(), evaluations()
    operative = tmp_path / "config.gin"
    operative.write_text(gin.operative_config_str())
    parse_config([str(operative)])
    tasks = evaluations()
    probes, knns = tasks[:3], tasks[3:6]
    assert [(t.modality, t.label) for t in probes] == [*PROBE_LABELS.items()]
    assert [(t.modality, t.label) for t in knns] == [*KNN_LABELS.items()]
    for probe, knn in zip(probes, knns):
        assert probe.train_data is knn.train_data and probe.test_data is knn.test_data
        assert probe.train_data.modalities == (probe.modality,) and (probe.train_data.frames, probe.test_data.frames) \
            == (4, 4)  # the micro clips


def test_the_modality_labels_file_probes_every_label_of_every_modality_sharing_datasets():
    parse_config(["recipes/quickstart.gin", "eval/modality_labels.gin"])
    tasks = evaluations()
    labels = ["label", "direction", "speed_class"]
    assert [(type(t), t.modality, t.label) for t in tasks] == [
        (kind, m, label) for kind in (LinearProbe, KNN) for m in ("video", "audio", "imu", "text") for label in labels]
    for m in ("video", "audio", "imu", "text"):
        same = [t for t in tasks if t.modality == m]
        assert len({id(t.train_data) for t in same}) == len({id(t.test_data) for t in same}) == 1


def test_probes_and_knn_of_the_modality_probes_file_encode_each_modality_once_per_split_and_model(tmp_path,
                                                                                                   monkeypatch):
    run_dir = untrained_quickstart_run(tmp_path)
    encoded = []
    encode = MaskedAutoencoder.encode
    monkeypatch.setattr(MaskedAutoencoder, "encode",
                        lambda self, batch, modality: encoded.append(modality) or encode(self, batch, modality))
    summary = evaluate_run(run_dir, ["eval/modality_probes.gin"], [
        "probe_train/MovingDigits.num_samples = 12", "probe_test/MovingDigits.num_samples = 8", "KNN.k = 3",
        "evaluations.retrievals = []"], random_init=True)
    # 12 and 8 samples are one batch each: per modality 2 splits x 2 models, for its probe and its kNN together
    assert sorted(encoded) == sorted(["video", "audio", "imu"] * 4)
    assert [(e["kind"], e["pretrained"]["modality"], e["random_init"]["label"]) for e in summary["evaluations"]] == [
        (kind, m, label) for kind, labels in (("linear_probe", PROBE_LABELS), ("knn", KNN_LABELS))
        for m, label in labels.items()]


def test_the_retrieval_file_pairs_video_and_audio_of_the_multimodal_quickstart():
    parse_config(["recipes/quickstart.gin", "eval/retrieval.gin"], ["evaluations.probes = []", "evaluations.knn = []"])
    (retrieval,) = evaluations()
    assert retrieval.pairs == [("video", "audio")] and retrieval.data.split == "test"
    assert {"video", "audio"} <= set(retrieval.data.modalities)


def test_evaluate_a_pretrained_encoder_only_directory_with_the_eval_files(micro_run, tmp_path):
    parse_config([MICRO_GIN])
    model = MaskedAutoencoder()
    load_model(model, str(micro_run / "model.safetensors"))
    directory = save_pretrained(model, tmp_path / "pretrained", (micro_run / "config.gin").read_text(),
                                encoder_only=True)
    gin.clear_config()
    small = ["probe_train/MovingDigits.num_samples = 24", "probe_test/MovingDigits.num_samples = 12",
             "probe_train/finetune/MovingDigits.num_samples = 16", "probe_test/finetune/MovingDigits.num_samples = 8",
             "AttentiveProbe.epochs = 1", "FineTune.epochs = 1", "KNN.k = 3"]
    files = [f"eval/{name}.gin" for name in ("linear_probe", "attentive_probe", "knn", "finetune")]
    summary = evaluate_run(directory, files, small)
    assert summary["run_dir"] == summary["source"] == str(directory)
    assert [entry["kind"] for entry in summary["evaluations"]] == ["linear_probe", "attentive_probe", "knn", "finetune"]
    linear, attentive, knn, finetune = (entry["pretrained"] for entry in summary["evaluations"])
    assert linear["test_samples"] == attentive["test_samples"] == knn["test_samples"] == 12
    assert finetune["views"] == 6 and finetune["view_shape"] == [4, 16, 16] and finetune["test_samples"] == 8
    # the same weights as the run directory they came from: the same linear probe
    from_run = evaluate_run(micro_run, ["eval/linear_probe.gin"], small)["evaluations"][0]["pretrained"]
    assert from_run == linear
