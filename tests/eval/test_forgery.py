"""Two-stream forgery detection: per-stream AUCs, late fusion, per-kind sets, bootstrap intervals,
and the report's lines."""

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from mmmae.eval.forgery import LateFusionDetection, auc_interval, fused_scores
from mmmae.eval.interval import CONFIDENCE
from mmmae.eval.report import comparison_lines, flat_metrics, forgery_lines
from tests.eval.fake_model import FakeModality, FakeModel


def samples(count: int, seed: int) -> list[dict]:
    """Even indices real, odd fakes alternating appearance (kind 1) and motion (kind 2); each stream's
    one-number feature is raised by 3 for the kind it sees, plus unit noise."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        kind = 0 if i % 2 == 0 else 1 + (i // 2) % 2
        rgb, flow = rng.normal(size=2) + 3 * np.array([kind == 1, kind == 2])
        out.append({"video": torch.tensor([[rgb]], dtype=torch.float32),
                    "flow": torch.tensor([[flow]], dtype=torch.float32),
                    "fake": torch.tensor(int(kind > 0)), "fake_kind": torch.tensor(kind), "index": torch.tensor(i)})
    return out


def model() -> FakeModel:
    return FakeModel({"video": FakeModality(), "flow": FakeModality()})


@pytest.fixture(scope="module")
def data() -> tuple[list[dict], list[dict]]:
    return samples(200, seed=0), samples(120, seed=1)


def test_each_stream_ranks_like_its_feature_and_sees_its_own_kind(data):
    train, test = data
    result = LateFusionDetection(train_data=train, test_data=test, resamples=200)(model())
    y = np.array([int(s["fake"]) for s in test])
    kind = np.array([int(s["fake_kind"]) for s in test])
    for stream, key in (("rgb", "video"), ("flow", "flow")):
        # one feature: the logistic regression's P(fake) is increasing in it, so the AUC is the feature's
        feature = np.array([float(s[key]) for s in test])
        assert result["auc"][stream] == roc_auc_score(y, feature)
        for name, k in (("appearance", 1), ("motion", 2)):
            rows = (kind == 0) | (kind == k)
            assert result["by_kind"][name]["auc"][stream] == roc_auc_score(y[rows], feature[rows])
    for name, stream in (("appearance", "rgb"), ("motion", "flow")):
        assert result["by_kind"][name]["auc"][stream] > 0.95
        assert result["by_kind"][name]["real"] == 60 and result["by_kind"][name]["fake"] == 30
    assert result["streams"] == {"rgb": "video", "flow": "flow"} and result["chance"] == 0.5
    assert (result["train_samples"], result["test_samples"]) == (200, 120)
    for part in (result, *result["by_kind"].values()):
        for stream, (low, high) in part["auc_ci"].items():
            assert 0 <= low <= part["auc"][stream] <= high <= 1


@pytest.mark.parametrize("weight, stream", [(1.0, "rgb"), (0.0, "flow")])
def test_a_fusion_weight_of_one_or_zero_is_one_stream(data, weight, stream):
    train, test = data
    result = LateFusionDetection(train_data=train, test_data=test, weight=weight, resamples=50)(model())
    assert result["auc"]["fused"] == result["auc"][stream]
    assert result["auc_ci"]["fused"] == result["auc_ci"][stream]


def test_fused_scores_weigh_the_rgb_stream():
    assert fused_scores(np.array([1.0, 0.0]), np.array([0.0, 1.0]), 0.25).tolist() == [0.25, 0.75]


def test_auc_interval_is_the_percentiles_of_stratified_resamples_with_ties():
    y = np.array([0, 0, 0, 1, 1, 0, 1, 0, 1, 1, 0, 0])
    scores = np.array([0.1, 0.4, 0.4, 0.4, 0.9, 0.2, 0.5, 0.7, 0.4, 0.8, 0.3, 0.5])
    rng = np.random.default_rng(3)  # the same draws: all reals, then all fakes, of 100 resamples
    real, fake = scores[y == 0], scores[y == 1]
    reals, fakes = real[rng.integers(7, size=(100, 7))], fake[rng.integers(5, size=(100, 5))]
    aucs = [roc_auc_score([0] * 7 + [1] * 5, np.concatenate([r, f])) for r, f in zip(reals, fakes)]
    tail = (1 - CONFIDENCE) / 2 * 100
    assert auc_interval(y, scores, 100, seed=3) == pytest.approx(np.percentile(aucs, [tail, 100 - tail]), abs=1e-12)
    assert auc_interval(y, np.where(y == 1, 1.0, 0.0), 100, seed=0) == [1.0, 1.0]


def test_bad_bindings_are_named(data):
    train, test = data
    with pytest.raises(ValueError, match="LateFusionDetection.weight = 1.5"):
        LateFusionDetection(train_data=train, test_data=test, weight=1.5)
    with pytest.raises(ValueError, match="LateFusionDetection: the model has no modality 'flow'"):
        LateFusionDetection(train_data=train, test_data=test)(FakeModel({"video": FakeModality()}))
    real_only = [s for s in train if int(s["fake"]) == 0]
    with pytest.raises(ValueError, match="LateFusionDetection.train_data: label 'fake' must take both values"):
        LateFusionDetection(train_data=real_only, test_data=test)(model())
    with pytest.raises(ValueError, match="LateFusionDetection.kind_key = 'kind'"):
        LateFusionDetection(train_data=train, test_data=test, kind_key="kind", resamples=10)(model())


def test_the_report_prints_and_compares_every_auc(data):
    train, test = data
    trained = LateFusionDetection(train_data=train, test_data=test, resamples=50)(model())
    fresh = LateFusionDetection(train_data=train, test_data=test, weight=0.0, resamples=50)(model())
    lines = forgery_lines("pretrained", trained)
    assert [line.split(":")[0] for line in lines] == [
        f"forgery video+flow ({name}), pretrained" for name in ("all fakes", "appearance", "motion")]
    assert f"rgb {trained['auc']['rgb']:.3f} (95 % CI {trained['auc_ci']['rgb'][0]:.3f}-" in lines[0]
    assert lines[0].endswith("200 train, 120 test samples)") and lines[1].endswith("60 real, 30 fake test samples)")
    rows = comparison_lines([{"kind": "forgery", "pretrained": trained, "random_init": fresh}])[2:]
    assert [row.split()[:4] for row in rows[:3]] == [["forgery", s, "AUC", f"{trained['auc'][s]:.3f}"]
                                                     for s in ("rgb", "flow", "fused")]
    assert len(rows) == 9 and rows[3].split()[:4] == ["forgery", "rgb", "AUC", "appearance"]
    metrics = flat_metrics({"evaluations": [{"kind": "forgery", "pretrained": trained}]})
    assert metrics["forgery fused auc motion (pretrained)"] == trained["by_kind"]["motion"]["auc"]["fused"]
    assert len(metrics) == 9


def test_the_recipe_trains_and_its_summary_prints_the_forgery_evaluation(tmp_path):
    from mmmae.cli import format_summary
    from mmmae.config import parse_config
    from mmmae.train import pretrain
    from tests.test_recipes import MICRO

    parse_config(["recipes/two_stream_forgery.gin", MICRO], ["forgery_train/MovingDigits.num_samples = 64",
                                                             "forgery_test/MovingDigits.num_samples = 32",
                                                             "LateFusionDetection.resamples = 100",
                                                             "evaluations.forgery = [@LateFusionDetection()]"])
    summary = pretrain(output_dir=str(tmp_path))
    [entry] = summary["evaluations"]
    assert entry["kind"] == "forgery" and entry["pretrained"]["test_samples"] == 32
    assert set(entry["random_init"]["by_kind"]) == {"appearance", "motion"}
    text = format_summary(summary)
    for init in ("pretrained", "random_init"):
        assert f"forgery video+flow (motion), {init}: AUC rgb " in text
    assert "  forgery fused AUC appearance " in text
