"""Lines that `mmmae eval` and `mmmae extract` print: one formatter per evaluation kind,
`EVALUATION_LINES[kind](init, result) -> list[str]` (init: "pretrained" or "random_init").

Each test accuracy and recall is followed by its 95 % confidence interval ("0.808 (95 % CI
0.783-0.831)") and a probe by its chance level, where the result holds them (results saved
before they were kept print without).
"""

import json
from pathlib import Path


def _absent(result: dict) -> int:
    return result["train_absent"] + result["test_absent"]


def _unreadable(count: int | None) -> str:
    """", N left out (unreadable)", or nothing for a result from before the count was kept."""
    return "" if count is None else f", {count} left out (unreadable)"


def _samples(result: dict) -> str:
    left_out = result["train_left_out"] + result["test_left_out"] if "train_left_out" in result else None
    return (f"{result['train_samples']} train, {result['test_samples']} test samples, "
            f"{_absent(result)} without {result['modality']} left out{_unreadable(left_out)}")


def _value(value: float, interval: list[float] | None) -> str:
    """"0.808 (95 % CI 0.783-0.831)", or "0.808" without an interval."""
    return f"{value:.3f}" if interval is None else f"{value:.3f} (95 % CI {interval[0]:.3f}-{interval[1]:.3f})"


def _accuracy(result: dict, measure: str = "test_accuracy") -> str:
    return _value(result[measure], result.get(f"{measure}_ci"))


def _chance(result: dict) -> str:
    """"chance 0.125; ", or nothing for a result from before it was kept."""
    return f"chance {result['chance']:.3f}; " if "chance" in result else ""


def _name(kind: str, result: dict, init: str) -> str:
    """"linear probe imu (direction), random_init": the evaluation, modality, label and init."""
    return f"{kind} {result['modality']} ({result['label']}), {init}" if "label" in result \
        else f"{kind} {result['modality']}, {init}"


def probe_lines(init: str, result: dict) -> list[str]:
    """One line for a LinearProbe result."""
    return [f"{_name('linear probe', result, init)}: test accuracy {_accuracy(result)} "
            f"({_chance(result)}train {result['train_accuracy']:.3f}; {_samples(result)})"]


def attentive_probe_lines(init: str, result: dict) -> list[str]:
    """One line for an AttentiveProbe result."""
    return [f"{_name('attentive probe', result, init)}: test accuracy {_accuracy(result)} "
            f"(train {result['train_accuracy']:.3f}, final loss {result['final_loss']:.4f} after {result['epochs']} "
            f"epochs; {_samples(result)})"]


def knn_lines(init: str, result: dict) -> list[str]:
    """One line for a KNN result."""
    return [f"{_name('knn', result, init)}: test accuracy {_accuracy(result)} "
            f"({_chance(result)}k {result['k']}, temperature {result['temperature']:g}; {_samples(result)})"]


def finetune_lines(init: str, result: dict) -> list[str]:
    """One line for a FineTune result: single-view and multi-view accuracy."""
    shape = "x".join(map(str, result["view_shape"])) if result["view_shape"] else "whole input"
    return [f"{_name('fine-tune', result, init)}: test accuracy {_accuracy(result)} single view, "
            f"{_accuracy(result, 'multi_view_accuracy')} over {result['views']} views of {shape} (train loss "
            f"{result['train_loss']:.4f} after {result['epochs']} epochs, {result['steps']} steps; {_samples(result)})"]


def retrieval_lines(init: str, result: dict) -> list[str]:
    """One line per pair and direction of a Retrieval result."""
    lines = []
    for pair in result.values():
        a, b = pair["modalities"]
        chance = " ".join(f"{k} {value:.3f}" for k, value in pair["chance"].items())
        for direction in (f"{a}->{b}", f"{b}->{a}"):
            intervals = pair.get(f"{direction}_ci", {})
            recall = " ".join(f"{k} {_value(value, intervals.get(k))}" for k, value in pair[direction].items())
            lines.append(f"retrieval {direction}, {init}: {recall} (chance {chance}; {pair['num_samples']} samples, "
                         f"{pair['absent']} lacking one left out{_unreadable(pair.get('left_out'))}; "
                         f"embedding {pair['embedding']})")
    return lines


EVALUATION_LINES = {"linear_probe": probe_lines, "attentive_probe": attentive_probe_lines, "knn": knn_lines,
                    "finetune": finetune_lines, "retrieval": retrieval_lines}


def extract_lines(files: list[Path]) -> list[str]:
    """What `mmmae extract` wrote, from its index.json (the last of `files`)."""
    index = files[-1]
    info = json.loads(Path(index).read_text())
    shape = "x".join(map(str, info["arrays"]["features"]["shape"]))
    what = "pooled" if info["pooled"] else "token"
    return [f"{info['modality']} features ({what}, {shape} per sample) of {info['num_samples']} samples "
            f"({info['absent']} without {info['modality']} left out{_unreadable(info.get('left_out'))}) in "
            f"{len(info['shards'])} {info['fmt']} shards: {index}"]


ACCURACIES = {"linear_probe": ("linear probe", ["test_accuracy"]), "attentive_probe": ("attentive probe", ["test_accuracy"]),
              "knn": ("knn", ["test_accuracy"]), "finetune": ("fine-tune", ["test_accuracy", "multi_view_accuracy"])}


def flat_metrics(summary: dict) -> dict[str, float]:
    """A summary's evaluation results as {"<evaluation> <modality> <measure> (<init>)": value}, for
    metadata and model cards, the label after the modality unless it is the digit class "label"
    ("linear probe imu direction accuracy (pretrained)"); retrieval gives "retrieval a->b R@k (<init>)"."""
    metrics = {}
    for entry in summary.get("evaluations", []):
        for init in ("pretrained", "random_init"):
            result = entry.get(init)
            if not result:
                continue
            if entry["kind"] == "retrieval":
                for pair in result.values():
                    a, b = pair["modalities"]
                    for direction in (f"{a}->{b}", f"{b}->{a}"):
                        metrics.update({f"retrieval {direction} {k} ({init})": v for k, v in pair[direction].items()})
            else:
                name, measures = ACCURACIES[entry["kind"]]
                target = result["modality"] + ("" if result.get("label", "label") == "label" else f" {result['label']}")
                for measure in measures:
                    what = measure.replace("test_accuracy", "accuracy").replace("_", " ")
                    metrics[f"{name} {target} {what} ({init})"] = result[measure]
    return metrics
