"""The lines `mmmae eval` and `mmmae extract` print, one formatter per evaluation kind."""

import torch

from mmmae.eval.attentive_probe import AttentiveProbe
from mmmae.eval.extract import extract_features
from mmmae.eval.few_shot import FewShot
from mmmae.eval.finetune import FineTune
from mmmae.eval.forgery import LateFusionDetection
from mmmae.eval.interval import wilson_interval
from mmmae.eval.knn import KNN
from mmmae.eval.linear_probe import LinearProbe
from mmmae.eval.report import EVALUATION_LINES, comparison_lines, extract_lines
from mmmae.eval.retrieval import Retrieval
from mmmae.eval.segmentation import TemporalSegmentation
from tests.eval.fake_model import FakeModality, FakeModel

COUNTS = {"modality": "video", "label": "label", "train_samples": 30, "test_samples": 12, "train_absent": 2,
          "test_absent": 1}


def test_every_evaluation_kind_has_a_formatter():
    kinds = {task.kind for task in (LinearProbe, AttentiveProbe, KNN, FineTune, Retrieval, LateFusionDetection, FewShot,
                                    TemporalSegmentation)}
    assert set(EVALUATION_LINES) == kinds


def test_probe_knn_and_finetune_lines():
    probe = {**COUNTS, "train_accuracy": 0.9, "test_accuracy": 0.8}
    assert EVALUATION_LINES["linear_probe"]("pretrained", probe) == [
        "linear probe video (label), pretrained: test accuracy 0.800 (train 0.900; 30 train, 12 test samples, "
        "3 without video left out)"]
    attentive = {**probe, "epochs": 5, "final_loss": 0.12345}
    assert EVALUATION_LINES["attentive_probe"]("random_init", attentive) == [
        "attentive probe video (label), random_init: test accuracy 0.800 (train 0.900, final loss 0.1235 after 5 "
        "epochs; 30 train, 12 test samples, 3 without video left out)"]
    knn = {**COUNTS, "k": 20, "temperature": 0.07, "test_accuracy": 0.5}
    assert EVALUATION_LINES["knn"]("pretrained", knn) == [
        "knn video (label), pretrained: test accuracy 0.500 (k 20, temperature 0.07; 30 train, 12 test samples, "
        "3 without video left out)"]
    finetune = {**COUNTS, "test_accuracy": 0.75, "multi_view_accuracy": 0.8, "views": 6, "view_shape": [8, 16, 16],
                "train_loss": 1.5, "epochs": 5, "steps": 50}
    assert EVALUATION_LINES["finetune"]("pretrained", finetune) == [
        "fine-tune video (label), pretrained: test accuracy 0.750 single view, 0.800 over 6 views of 8x16x16 (train "
        "loss 1.5000 after 5 epochs, 50 steps; 30 train, 12 test samples, 3 without video left out)"]
    assert "over 1 views of whole input" in EVALUATION_LINES["finetune"](
        "pretrained", {**finetune, "views": 1, "view_shape": None})[0]


def test_unreadable_samples_left_out_are_in_every_line():
    probe = {**COUNTS, "train_accuracy": 0.9, "test_accuracy": 0.8, "train_left_out": 4, "test_left_out": 5}
    assert EVALUATION_LINES["linear_probe"]("pretrained", probe) == [
        "linear probe video (label), pretrained: test accuracy 0.800 (train 0.900; 30 train, 12 test samples, "
        "3 without video left out, 9 left out (unreadable))"]
    others = {"attentive_probe": {**probe, "epochs": 5, "final_loss": 0.1},
              "knn": {**probe, "k": 20, "temperature": 0.07},
              "finetune": {**probe, "multi_view_accuracy": 0.8, "views": 1, "view_shape": None, "train_loss": 1.5,
                           "epochs": 5, "steps": 50}}
    for kind, result in others.items():
        assert "3 without video left out, 9 left out (unreadable))" in EVALUATION_LINES[kind]("pretrained", result)[0]
    pair = {"modalities": ["video", "audio"], "video->audio": {"R@1": 0.5}, "audio->video": {"R@1": 0.25},
            "num_samples": 8, "absent": 1, "left_out": 2, "chance": {"R@1": 0.125}, "embedding": "mean_pooled"}
    for line in EVALUATION_LINES["retrieval"]("pretrained", {"video-audio": pair}):
        assert "8 samples, 1 lacking one left out, 2 left out (unreadable); embedding mean_pooled)" in line


def test_intervals_and_chance_follow_each_accuracy_and_recall():
    ci = {"test_accuracy_ci": [0.5, 0.95], "chance": 0.125}
    probe = {**COUNTS, "label": "direction", "train_accuracy": 0.9, "test_accuracy": 0.8, **ci}
    assert EVALUATION_LINES["linear_probe"]("random_init", probe) == [
        "linear probe video (direction), random_init: test accuracy 0.800 (95 % CI 0.500-0.950) (chance 0.125; "
        "train 0.900; 30 train, 12 test samples, 3 without video left out)"]
    knn = {**COUNTS, "k": 20, "temperature": 0.07, "test_accuracy": 0.5, **ci}
    assert EVALUATION_LINES["knn"]("pretrained", knn)[0].startswith(
        "knn video (label), pretrained: test accuracy 0.500 (95 % CI 0.500-0.950) (chance 0.125; k 20,")
    attentive = {**knn, "train_accuracy": 0.9, "epochs": 5, "final_loss": 0.1}
    assert "test accuracy 0.500 (95 % CI 0.500-0.950) (train 0.900" in \
        EVALUATION_LINES["attentive_probe"]("pretrained", attentive)[0]
    finetune = {**knn, "multi_view_accuracy": 0.75, "multi_view_accuracy_ci": [0.25, 0.875], "views": 6,
                "view_shape": [8, 16, 16], "train_loss": 1.5, "epochs": 5, "steps": 50}
    assert ("test accuracy 0.500 (95 % CI 0.500-0.950) single view, 0.750 (95 % CI 0.250-0.875) over 6 views"
            in EVALUATION_LINES["finetune"]("pretrained", finetune)[0])
    pair = {"modalities": ["video", "audio"], "video->audio": {"R@1": 0.5, "R@5": 0.75},
            "audio->video": {"R@1": 0.25, "R@5": 0.5}, "video->audio_ci": {"R@1": [0.2, 0.8], "R@5": [0.4, 0.9]},
            "audio->video_ci": {"R@1": [0.05, 0.6], "R@5": [0.2, 0.8]}, "num_samples": 8, "absent": 0,
            "chance": {"R@1": 0.125, "R@5": 0.625}, "embedding": "mean_pooled"}
    assert [line.split(" (chance")[0] for line in EVALUATION_LINES["retrieval"]("pretrained", {"video-audio": pair})] \
        == ["retrieval video->audio, pretrained: R@1 0.500 (95 % CI 0.200-0.800) R@5 0.750 (95 % CI 0.400-0.900)",
            "retrieval audio->video, pretrained: R@1 0.250 (95 % CI 0.050-0.600) R@5 0.500 (95 % CI 0.200-0.800)"]


def test_the_intervals_evaluations_store_are_the_ones_printed():
    data = [{"video": torch.full((2, 3), float(i % 2)) + 0.1 * torch.randn(2, 3), "label": i % 2} for i in range(20)]
    model = FakeModel({"video": FakeModality()})
    for task in (LinearProbe(train_data=data, test_data=data), KNN(train_data=data, test_data=data, k=3)):
        result = task(model)
        low, high = wilson_interval(result["test_accuracy"], 20)
        assert result["test_accuracy_ci"] == [low, high]
        assert f"test accuracy {result['test_accuracy']:.3f} (95 % CI {low:.3f}-{high:.3f})" in \
            EVALUATION_LINES[task.kind]("pretrained", result)[0]
    pair = Retrieval(data=[{"video": s["video"], "audio": s["video"]} for s in data], pairs=[["video", "audio"]])(
        FakeModel({"video": FakeModality(), "audio": FakeModality()}))["video-audio"]
    for direction in ("video->audio", "audio->video"):
        assert pair[f"{direction}_ci"] == {k: wilson_interval(v, 20) for k, v in pair[direction].items()}


def test_retrieval_lines_one_per_direction():
    pair = {"modalities": ["video", "audio"], "video->audio": {"R@1": 0.5}, "audio->video": {"R@1": 0.25},
            "num_samples": 8, "absent": 0, "chance": {"R@1": 0.125}, "embedding": "mean_pooled"}
    lines = EVALUATION_LINES["retrieval"]("pretrained", {"video-audio": pair})
    assert lines == ["retrieval video->audio, pretrained: R@1 0.500 (chance R@1 0.125; 8 samples, 0 lacking one "
                     "left out; embedding mean_pooled)",
                     "retrieval audio->video, pretrained: R@1 0.250 (chance R@1 0.125; 8 samples, 0 lacking one "
                     "left out; embedding mean_pooled)"]


def test_extract_line_reads_the_index(tmp_path):
    data = [{"video": torch.randn(3, 4), "video_present": i != 1} for i in range(5)]
    files = extract_features(FakeModel({"video": FakeModality()}), data, "video", tmp_path, fmt="npy", shard_size=2)
    assert extract_lines(files) == [f"video features (pooled, 4 per sample) of 4 samples (1 without video left out, "
                                    f"0 left out (unreadable)) in 2 npy shards: {tmp_path / 'index.json'}"]


def test_flat_metrics_names_every_measure_and_init():
    from mmmae.eval.report import flat_metrics

    pair = {"modalities": ["video", "audio"], "video->audio": {"R@1": 0.5}, "audio->video": {"R@1": 0.25}}
    summary = {"evaluations": [
        {"kind": "linear_probe", "pretrained": {"modality": "video", "test_accuracy": 0.8},
         "random_init": {"modality": "video", "test_accuracy": 0.5}},
        {"kind": "finetune", "pretrained": {"modality": "video", "test_accuracy": 0.6, "multi_view_accuracy": 0.7}},
        {"kind": "retrieval", "pretrained": {"video-audio": pair}},
    ]}
    assert flat_metrics(summary) == {
        "linear probe video accuracy (pretrained)": 0.8, "linear probe video accuracy (random_init)": 0.5,
        "fine-tune video accuracy (pretrained)": 0.6, "fine-tune video multi view accuracy (pretrained)": 0.7,
        "retrieval video->audio R@1 (pretrained)": 0.5, "retrieval audio->video R@1 (pretrained)": 0.25}


def test_comparison_table_puts_both_inits_side_by_side_and_stars_only_separated_intervals():
    def probe(accuracy, interval):
        return {**COUNTS, "train_accuracy": 1.0, "test_accuracy": accuracy, "test_accuracy_ci": interval,
                "chance": 0.125}
    apart = {"kind": "linear_probe", "pretrained": probe(0.8, [0.75, 0.84]), "random_init": probe(0.5, [0.45, 0.55])}
    overlapping = {"kind": "knn", "pretrained": {**probe(0.6, [0.55, 0.65]), "k": 20, "temperature": 0.07},
                   "random_init": {**probe(0.55, [0.5, 0.6]), "k": 20, "temperature": 0.07}}
    pair = {"modalities": ["video", "audio"], "video->audio": {"R@1": 0.3}, "audio->video": {"R@1": 0.2},
            "video->audio_ci": {"R@1": [0.25, 0.35]}, "audio->video_ci": {"R@1": [0.15, 0.25]},
            "chance": {"R@1": 0.01}, "num_samples": 100, "absent": 0, "embedding": "e"}
    fresh = {**pair, "video->audio": {"R@1": 0.01}, "audio->video": {"R@1": 0.02},
             "video->audio_ci": {"R@1": [0.0, 0.05]}, "audio->video_ci": {"R@1": [0.0, 0.07]}}
    retrieval = {"kind": "retrieval", "pretrained": {"video-audio": pair}, "random_init": {"video-audio": fresh}}
    lines = comparison_lines([apart, overlapping, retrieval, {"kind": "linear_probe", "pretrained": probe(0.9, None)}])
    rows = lines[2:]
    assert len(rows) == 4  # the single-init probe has no row
    assert rows[0].split() == ["linear", "probe", "video", "(label)", "0.800", "(0.750-0.840)", "0.500",
                               "(0.450-0.550)", "+0.300", "*", "chance", "0.125"]
    assert rows[1].split()[3:8] == ["0.600", "(0.550-0.650)", "0.550", "(0.500-0.600)", "+0.050"]
    assert "*" not in rows[1]
    assert rows[2].split()[:5] == ["retrieval", "video->audio", "R@1", "0.300", "(0.250-0.350)"]
    assert rows[2].split()[7:] == ["+0.290", "*", "chance", "0.010"]
    assert rows[3].split()[7] == "+0.180" and "*" in rows[3]


def test_comparison_table_without_intervals_and_without_both_inits():
    old = {**COUNTS, "train_accuracy": 1.0, "test_accuracy": 0.7}  # a result saved before intervals were kept
    rows = comparison_lines([{"kind": "linear_probe", "pretrained": old, "random_init": {**old, "test_accuracy": 0.2}}])
    assert rows[2].split() == ["linear", "probe", "video", "(label)", "0.700", "0.200", "+0.500"]
    assert comparison_lines([{"kind": "linear_probe", "pretrained": old}]) == []
