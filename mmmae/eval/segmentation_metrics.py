"""Temporal action segmentation and detection metrics, after their published definitions.

Segmentation (MS-TCN's eval.py): a video's segments are its runs of equal frame label, the runs of
the background label dropped (so A, bg, A gives two A segments), as half-open [start, stop).
  frame accuracy: correct / all frames, pooled over videos (background frames included);
  edit score: (1 - Levenshtein(predicted, true segment-label strings) / the longer's length) per
    video (1 when both are empty), averaged over videos;
  F1@k: each predicted segment, in order, takes the same-label true segment of highest IoU; a true
    positive if that IoU >= k and the true segment is still unmatched, else a false positive;
    unmatched true segments are false negatives; the counts summed over videos give P, R, F1.
Detection (ActivityNet / ActionFormer's mAP): per class, the detections of all videos ranked by
score; each, in that order, matches the unmatched same-class true segment of its video with the
highest tIoU >= the threshold (a true positive) or is a false positive; AP is the area under the
interpolated precision-recall curve (precision made monotone, recall over all true segments);
mAP averages AP over the classes that have true segments, then over the tIoU thresholds.
Values are fractions in [0, 1] (MS-TCN prints edit and F1 times 100).
"""

from dataclasses import dataclass

import numpy as np
from torchaudio.functional import edit_distance

F1_OVERLAPS = (0.10, 0.25, 0.50)
DETECTION_TIOUS = tuple(np.linspace(0.1, 0.5, 5).round(2).tolist())


def label_segments(labels: np.ndarray, background: int | None) -> np.ndarray:
    """The runs of equal label in frame labels (T,), those of `background` dropped: (n, 3) int64
    rows (start, stop, label), stop exclusive."""
    labels = np.asarray(labels)
    if len(labels) == 0:
        return np.zeros((0, 3), np.int64)
    starts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]])
    stops = np.r_[starts[1:], len(labels)]
    rows = np.stack([starts, stops, labels[starts]], axis=1).astype(np.int64)
    return rows[rows[:, 2] != background] if background is not None else rows


def interval_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of intervals a (n, 2) and b (m, 2), [start, stop): (n, m), 0 where they do not overlap."""
    a, b = np.asarray(a, np.float64).reshape(-1, 2), np.asarray(b, np.float64).reshape(-1, 2)
    inter = np.clip(np.minimum(a[:, None, 1], b[None, :, 1]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    union = (a[:, None, 1] - a[:, None, 0]) + (b[None, :, 1] - b[None, :, 0]) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def edit_score(predicted: np.ndarray, truth: np.ndarray, background: int | None) -> float:
    """1 - Levenshtein distance of the two segment-label strings / the longer's length (1 if both empty)."""
    p, t = (label_segments(x, background)[:, 2].tolist() for x in (predicted, truth))
    if not p and not t:
        return 1.0
    return 1.0 - edit_distance(p, t) / max(len(p), len(t))


def f1_counts(predicted: np.ndarray, truth: np.ndarray, overlap: float, background: int | None) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives) of one video at IoU threshold `overlap` (module docstring)."""
    p, t = label_segments(predicted, background), label_segments(truth, background)
    matched = np.zeros(len(t), bool)
    tp = fp = 0
    if len(t):
        iou = interval_iou(p[:, :2], t[:, :2]) * (p[:, None, 2] == t[None, :, 2])
    for row in range(len(p)):
        best = int(iou[row].argmax()) if len(t) else -1
        if best >= 0 and iou[row, best] >= overlap and not matched[best]:
            tp, matched[best] = tp + 1, True
        else:
            fp += 1
    return tp, fp, len(t) - tp


def f1_score(tp: int, fp: int, fn: int) -> float:
    """2PR / (P + R) from summed counts; 0 where undefined."""
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


@dataclass
class Detections:
    """One video's detections: segments (n, 3) rows (start, stop, label) and scores (n,)."""

    segments: np.ndarray
    scores: np.ndarray


def run_detections(probabilities: np.ndarray, background: int | None) -> Detections:
    """Detections from frame class probabilities (T, K): the runs of the arg-max label (background
    dropped), each scored by its label's mean probability over its frames."""
    segments = label_segments(probabilities.argmax(axis=1), background)
    scores = np.array([probabilities[s:e, k].mean() for s, e, k in segments], np.float64)
    return Detections(segments, scores)


def detection_hits(found: Detections, truth: np.ndarray, tiou: float) -> np.ndarray:
    """(n,) bool: which of a video's detections are true positives at `tiou` against its true
    segments (n_t, 3), matched greedily in descending score order within each class."""
    hits = np.zeros(len(found.scores), bool)
    for label in np.unique(found.segments[:, 2]):
        rows = np.flatnonzero(found.segments[:, 2] == label)
        rows = rows[np.argsort(-found.scores[rows], kind="stable")]
        targets = truth[truth[:, 2] == label]
        taken = np.zeros(len(targets), bool)
        iou = interval_iou(found.segments[rows, :2], targets[:, :2])
        for i, row in enumerate(rows):
            for j in np.argsort(-iou[i], kind="stable"):
                if iou[i, j] < tiou:
                    break
                if not taken[j]:
                    hits[row], taken[j] = True, True
                    break
    return hits


def interpolated_ap(scores: np.ndarray, hits: np.ndarray, positives: int) -> float:
    """Area under the precision-recall curve of detections ranked by score (stable), with the
    precision made non-increasing in recall (ActivityNet's interpolated AP); recall over
    `positives` true segments. 0 when there are no detections."""
    if positives == 0 or len(scores) == 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(hits[order])
    precision = tp / np.arange(1, len(order) + 1)
    recall = tp / positives
    precision = np.r_[0.0, precision, 0.0]
    recall = np.r_[0.0, recall, 1.0]
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.flatnonzero(recall[1:] != recall[:-1]) + 1
    return float(np.sum((recall[steps] - recall[steps - 1]) * precision[steps]))


def map_from_hits(found: list[Detections], hits: list[np.ndarray], truths: list[np.ndarray]) -> float:
    """mAP over videos from each video's detections, their hits at one tIoU (detection_hits) and
    true segments: AP per class with true segments (detections of all videos ranked together),
    averaged over those classes."""
    labels = np.concatenate([f.segments[:, 2] for f in found]) if found else np.zeros(0, np.int64)
    scores = np.concatenate([f.scores for f in found]) if found else np.zeros(0)
    flags = np.concatenate(hits) if hits else np.zeros(0, bool)
    true_labels = np.concatenate([t[:, 2] for t in truths]) if truths else np.zeros(0, np.int64)
    classes = np.unique(true_labels)
    if len(classes) == 0:
        return 0.0
    return float(np.mean([interpolated_ap(scores[labels == k], flags[labels == k], int((true_labels == k).sum()))
                          for k in classes]))


@dataclass
class VideoScores:
    """One video's share of every metric, so that any set of videos (a bootstrap resample) can be
    scored again without re-matching: correct and total frames, edit score, F1 counts (3 per
    overlap), detections, their hits per tIoU, and the true segments."""

    correct: int
    frames: int
    edit: float
    f1: dict[float, tuple[int, int, int]]
    detections: Detections
    hits: dict[float, np.ndarray]
    truth: np.ndarray


def video_scores(probabilities: np.ndarray, truth: np.ndarray, background: int | None) -> VideoScores:
    """Score one video: frame class probabilities (T, K) against frame labels (T,)."""
    predicted = probabilities.argmax(axis=1)
    segments = label_segments(truth, background)
    found = run_detections(probabilities, background)
    return VideoScores(correct=int((predicted == truth).sum()), frames=len(truth),
                       edit=edit_score(predicted, truth, background),
                       f1={k: f1_counts(predicted, truth, k, background) for k in F1_OVERLAPS},
                       detections=found, hits={t: detection_hits(found, segments, t) for t in DETECTION_TIOUS},
                       truth=segments)


def summary(videos: list[VideoScores]) -> dict[str, float]:
    """{"frame_accuracy", "edit", "f1@10", "f1@25", "f1@50", "map", "map@0.1".."map@0.5"} over `videos`."""
    result = {"frame_accuracy": sum(v.correct for v in videos) / sum(v.frames for v in videos),
              "edit": float(np.mean([v.edit for v in videos]))}
    for k in F1_OVERLAPS:
        counts = np.sum([v.f1[k] for v in videos], axis=0)
        result[f"f1@{round(k * 100)}"] = f1_score(*counts.tolist())
    found, truths = [v.detections for v in videos], [v.truth for v in videos]
    per_tiou = {t: map_from_hits(found, [v.hits[t] for v in videos], truths) for t in DETECTION_TIOUS}
    result["map"] = float(np.mean(list(per_tiou.values())))
    result.update({f"map@{t:g}": value for t, value in per_tiou.items()})
    return result
