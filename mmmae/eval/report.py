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


def forgery_lines(init: str, result: dict) -> list[str]:
    """One line per test set of a LateFusionDetection result: all fakes, then each fake kind."""
    streams = result["streams"]
    sets = [("all fakes", result)] + list(result["by_kind"].items())
    lines = []
    for name, part in sets:
        aucs = ", ".join(f"{stream} {_value(part['auc'][stream], part['auc_ci'][stream])}"
                         for stream in ("rgb", "flow", "fused"))
        size = (f"{result['train_samples']} train, {result['test_samples']} test samples" if part is result
                else f"{part['real']} real, {part['fake']} fake test samples")
        lines.append(f"forgery {streams['rgb']}+{streams['flow']} ({name}), {init}: AUC {aucs} (w {result['weight']:g} "
                     f"on {streams['rgb']}; chance {result['chance']:.3f}; {size})")
    return lines


def _few_shot_name(result: dict, score: dict) -> str:
    """"5-way 1-shot video logreg", with the label after the modality unless it is "label"."""
    label = "" if result["label"] == "label" else f" ({result['label']})"
    return f"{result['ways']}-way {score['shots']}-shot {result['modality']}{label} {score['classifier']}"


def few_shot_lines(init: str, result: dict) -> list[str]:
    """One line per shot count and classifier of a FewShot result."""
    return [f"few-shot {_few_shot_name(result, score)}, {init}: accuracy "
            f"{_value(score['accuracy'], score['accuracy_ci'])} (chance {result['chance']:.3f}; {result['episodes']} "
            f"episodes of {result['queries']} queries per class over classes {result['classes']}; "
            f"{result['samples']} samples, {result['absent']} without {result['modality']} left out"
            f"{_unreadable(result['left_out'])})" for score in result["scores"]]


SEGMENTATION_MEASURES = {"frame_accuracy": "frame accuracy", "edit": "edit", "f1@10": "F1@10", "f1@25": "F1@25",
                         "f1@50": "F1@50", "map": "mAP@0.1:0.5"}


def segmentation_lines(init: str, result: dict) -> list[str]:
    """One line for a TemporalSegmentation result: its measures with their intervals."""
    values = ", ".join(f"{text} {_value(result[m], result.get(f'{m}_ci'))}"
                       for m, text in SEGMENTATION_MEASURES.items())
    return [f"segmentation {result['modality']} ({result['label']}), {init}: {values} (chance {result['chance']:.3f}; "
            f"train frame accuracy {result['train_frame_accuracy']:.3f}, final loss {result['final_loss']:.4f} after "
            f"{result['epochs']} epochs; windows of {result['window']} frames every {result['stride']}; "
            f"{result['train_sequences']} train, {result['test_sequences']} test videos)"]


def _forgery_rows(trained: dict, fresh: dict) -> list[tuple[str, float, float, list[float], list[float]]]:
    """(name, pretrained AUC, random_init AUC, their intervals) per stream, on all fakes and per kind."""
    rows = []
    for name, part, other in [("", trained, fresh)] + [(f" {k}", v, fresh["by_kind"][k])
                                                        for k, v in trained["by_kind"].items()]:
        for stream in ("rgb", "flow", "fused"):
            rows.append((f"forgery {stream} AUC{name}", part["auc"][stream], other["auc"][stream],
                         part["auc_ci"][stream], other["auc_ci"][stream]))
    return rows


def _compared(name: str, pretrained: float, random_init: float, pretrained_ci: list[float] | None,
              random_ci: list[float] | None, chance: float | None) -> str:
    """One row of `comparison_lines`: both values with their intervals, the gain, '*' when the
    intervals do not overlap, and the chance level."""
    apart = pretrained_ci is not None and random_ci is not None and (
        pretrained_ci[0] > random_ci[1] or pretrained_ci[1] < random_ci[0])
    chance_text = "" if chance is None else f"  chance {chance:.3f}"
    cells = [f"{value:.3f}{_bounds(interval)}" for value, interval in ((pretrained, pretrained_ci),
                                                                      (random_init, random_ci))]
    return (f"  {name:<34} {cells[0]:<22} {cells[1]:<22} {pretrained - random_init:+.3f}{' *' if apart else '  '}"
            f"{chance_text}")


def _bounds(interval: list[float] | None) -> str:
    """" (0.783-0.831)", or nothing without an interval."""
    return "" if interval is None else f" ({interval[0]:.3f}-{interval[1]:.3f})"


def comparison_lines(evaluations: list[dict]) -> list[str]:
    """The evaluations that ran on both models as one table: per accuracy or recall, the pretrained
    and the random_init value with 95 % intervals, their difference, '*' where the intervals do not
    overlap, and chance. Empty when no evaluation ran on both."""
    rows = []
    for entry in evaluations:
        trained, fresh = entry.get("pretrained"), entry.get("random_init")
        if not trained or not fresh:
            continue
        if entry["kind"] == "retrieval":
            for key, pair in trained.items():
                a, b = pair["modalities"]
                for direction in (f"{a}->{b}", f"{b}->{a}"):
                    for k, value in pair[direction].items():
                        rows.append(_compared(f"retrieval {direction} {k}", value, fresh[key][direction][k],
                                              pair.get(f"{direction}_ci", {}).get(k),
                                              fresh[key].get(f"{direction}_ci", {}).get(k), pair["chance"][k]))
            continue
        if entry["kind"] == "forgery":
            rows += [_compared(*row, trained["chance"]) for row in _forgery_rows(trained, fresh)]
            continue
        if entry["kind"] == "few_shot":
            rows += [_compared(f"few-shot {_few_shot_name(trained, mine)}", mine["accuracy"], theirs["accuracy"],
                               mine["accuracy_ci"], theirs["accuracy_ci"], trained["chance"])
                     for mine, theirs in zip(trained["scores"], fresh["scores"])]
            continue
        if entry["kind"] == "segmentation":
            rows += [_compared(f"segmentation {trained['modality']} {text}", trained[m], fresh[m],
                               trained.get(f"{m}_ci"), fresh.get(f"{m}_ci"),
                               trained["chance"] if m == "frame_accuracy" else None)
                     for m, text in SEGMENTATION_MEASURES.items()]
            continue
        name, measures = ACCURACIES[entry["kind"]]
        label = f" ({trained['label']})" if "label" in trained else ""
        for measure in measures:
            suffix = "" if measure == "test_accuracy" else f" {measure.replace('_accuracy', '').replace('_', '-')}"
            rows.append(_compared(f"{name} {trained['modality']}{label}{suffix}", trained[measure], fresh[measure],
                                  trained.get(f"{measure}_ci"), fresh.get(f"{measure}_ci"), trained.get("chance")))
    if not rows:
        return []
    header = f"  {'evaluation':<34} {'pretrained (95 % CI)':<22} {'random_init (95 % CI)':<22} gain"
    return ["pretrained against random_init (test accuracy or recall; * where the 95 % intervals do not overlap):",
            header, *rows]


EVALUATION_LINES = {"linear_probe": probe_lines, "attentive_probe": attentive_probe_lines, "knn": knn_lines,
                    "finetune": finetune_lines, "retrieval": retrieval_lines, "forgery": forgery_lines,
                    "few_shot": few_shot_lines, "segmentation": segmentation_lines}


def extract_lines(files: list[Path]) -> list[str]:
    """What `mmmae extract` wrote, from its index.json (the last of `files`)."""
    index = files[-1]
    info = json.loads(Path(index).read_text())
    shape = "x".join(map(str, info["arrays"]["features"]["shape"]))
    what = "pooled" if info["pooled"] else "token"
    return [f"{info['modality']} features ({what}, {shape} per sample) of {info['num_samples']} samples "
            f"({info['absent']} without {info['modality']} left out{_unreadable(info.get('left_out'))}) in "
            f"{len(info['shards'])} {info['fmt']} shards: {index}"]


ACCURACIES = {"linear_probe": ("linear probe", ["test_accuracy"]),
              "attentive_probe": ("attentive probe", ["test_accuracy"]),
              "knn": ("knn", ["test_accuracy"]), "finetune": ("fine-tune", ["test_accuracy", "multi_view_accuracy"]),
              "segmentation": ("segmentation", list(SEGMENTATION_MEASURES))}


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
            elif entry["kind"] == "few_shot":
                metrics.update({f"few-shot {_few_shot_name(result, score)} accuracy ({init})": score["accuracy"]
                                for score in result["scores"]})
            elif entry["kind"] == "forgery":
                for name, part in [("", result), *((f" {k}", v) for k, v in result["by_kind"].items())]:
                    metrics.update({f"forgery {stream} auc{name} ({init})": v for stream, v in part["auc"].items()})
            else:
                name, measures = ACCURACIES[entry["kind"]]
                target = result["modality"] + ("" if result.get("label", "label") == "label" else f" {result['label']}")
                for measure in measures:
                    what = measure.replace("test_accuracy", "accuracy").replace("_", " ")
                    metrics[f"{name} {target} {what} ({init})"] = result[measure]
    return metrics
