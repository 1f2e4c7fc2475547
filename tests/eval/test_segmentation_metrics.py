"""Segmentation and detection metrics against hand-computed examples (MS-TCN's and ActivityNet's definitions)."""

import numpy as np
import pytest

from mmmae.eval.segmentation_metrics import (
    DETECTION_TIOUS,
    Detections,
    detection_hits,
    edit_score,
    f1_counts,
    f1_score,
    interpolated_ap,
    interval_iou,
    label_segments,
    map_from_hits,
    run_detections,
    summary,
    video_scores,
)


def frames(*runs: tuple[int, int]) -> np.ndarray:
    """Frame labels from (label, length) runs."""
    return np.concatenate([np.full(n, label) for label, n in runs])



def mean_average_precision(found, truths, tiou):
    return map_from_hits(found, [detection_hits(f, t, tiou) for f, t in zip(found, truths, strict=True)], truths)

def test_segments_are_runs_with_background_dropped():
    labels = frames((0, 2), (1, 2), (0, 1), (2, 2), (1, 1))
    assert label_segments(labels, background=0).tolist() == [[2, 4, 1], [5, 7, 2], [7, 8, 1]]
    assert label_segments(labels, background=None)[:, 2].tolist() == [0, 1, 0, 2, 1]
    assert label_segments(np.zeros(0, np.int64), 0).shape == (0, 3)


def test_interval_iou():
    assert interval_iou([[0, 10]], [[5, 15], [10, 20], [0, 4]]).tolist() == [[5 / 15, 0.0, 0.4]]


def test_edit_score_by_hand():
    truth = frames((1, 4), (2, 4), (3, 4))  # "1 2 3"
    assert edit_score(frames((1, 6), (3, 6)), truth, 0) == pytest.approx(1 - 1 / 3)  # one deletion
    assert edit_score(truth, truth, 0) == 1.0
    # a background run splits a segment in two: "1 1 2" against "1 2", one insertion over 3
    assert edit_score(frames((1, 2), (0, 1), (1, 1), (2, 4)), frames((1, 4), (2, 4)), 0) == pytest.approx(2 / 3)
    assert edit_score(frames((0, 5)), frames((0, 5)), 0) == 1.0  # both empty
    assert edit_score(frames((1, 5)), frames((0, 5)), 0) == 0.0


def test_f1_counts_by_hand():
    truth = frames((1, 10), (2, 10))  # (0, 10, 1), (10, 20, 2)
    # IoUs 6/10 and 10/14: both hits at 0.5
    assert f1_counts(frames((1, 6), (2, 14)), truth, 0.5, 0) == (2, 0, 0)
    # IoUs 4/10 and 10/16: segment 1 misses at 0.5 (a false positive, its truth a false negative), hits at 0.25
    assert f1_counts(frames((1, 4), (2, 16)), truth, 0.5, 0) == (1, 1, 1)
    assert f1_counts(frames((1, 4), (2, 16)), truth, 0.25, 0) == (2, 0, 0)
    # two predictions take the same true segment: the second is a false positive
    assert f1_counts(frames((1, 5), (0, 1), (1, 4)), frames((1, 10)), 0.25, 0) == (1, 1, 0)
    # a wrong label never matches; nothing predicted: all false negatives
    assert f1_counts(frames((2, 10)), frames((1, 10)), 0.1, 0) == (0, 1, 1)
    assert f1_counts(frames((0, 10)), frames((1, 10)), 0.1, 0) == (0, 0, 1)


def test_f1_sums_counts_over_videos_before_the_score():
    scores = [video_scores(np.eye(3)[p], t, 0) for p, t in (
        (frames((1, 5), (0, 1), (1, 4)), frames((1, 10))),  # tp 1, fp 1, fn 0 at 0.25
        (frames((1, 10), (2, 10)), frames((1, 10), (2, 10))))]  # tp 2
    # P = 3 / 4, R = 1: F1 = 6 / 7 (the mean of the per-video F1s, 2/3 and 1, would be 5 / 6)
    assert summary(scores)["f1@25"] == pytest.approx(6 / 7)
    assert f1_score(3, 1, 0) == pytest.approx(6 / 7) and f1_score(0, 0, 0) == 0.0


def test_frame_accuracy_pools_frames_and_edit_averages_videos():
    short = video_scores(np.eye(3)[frames((1, 2), (2, 2))], frames((1, 4)), 0)  # 2 of 4 right, edit 1/2
    long = video_scores(np.eye(3)[frames((1, 12))], frames((1, 12)), 0)  # 12 of 12, edit 1
    result = summary([short, long])
    assert result["frame_accuracy"] == pytest.approx(14 / 16)
    assert result["edit"] == pytest.approx(0.75)


def test_run_detections_score_runs_by_their_mean_probability():
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.7, 0.3]])
    found = run_detections(probabilities, background=0)
    assert found.segments.tolist() == [[1, 3, 1]]
    assert found.scores.tolist() == pytest.approx([0.7])


def test_interpolated_ap_by_hand():
    # ranked TP, FP, TP over 3 positives: precision 1, 1/2, 2/3 at recall 1/3, 1/3, 2/3;
    # interpolated: 1 up to 1/3, then max(1/2, 2/3) = 2/3 up to 2/3: AP = 1/3 + 2/9
    assert interpolated_ap(np.array([0.9, 0.8, 0.7]), np.array([True, False, True]), 3) == pytest.approx(5 / 9)
    assert interpolated_ap(np.array([0.7, 0.9, 0.8]), np.array([True, True, False]), 3) == pytest.approx(5 / 9)
    assert interpolated_ap(np.zeros(0), np.zeros(0, bool), 2) == 0.0


def test_map_over_tious_by_hand():
    truths = [np.array([[0, 10, 1]]), np.array([[0, 20, 1], [30, 40, 1]])]
    found = [Detections(np.array([[0, 10, 1]]), np.array([0.9])),
             Detections(np.array([[0, 7, 1], [30, 40, 1]]), np.array([0.8, 0.7]))]  # IoU 1; 0.35 and 1
    assert mean_average_precision(found, truths, 0.3) == pytest.approx(1.0)
    assert mean_average_precision(found, truths, 0.5) == pytest.approx(5 / 9)  # ranked TP, FP, TP
    per_tiou = [mean_average_precision(found, truths, t) for t in DETECTION_TIOUS]
    assert np.mean(per_tiou) == pytest.approx((3 + 2 * 5 / 9) / 5)  # hits at 0.1, 0.2, 0.3; not at 0.4, 0.5
    # a class with true segments and no detection counts with AP 0
    truths[0] = np.array([[0, 10, 1], [12, 14, 2]])
    assert mean_average_precision(found, truths, 0.3) == pytest.approx(0.5)


def test_a_detection_takes_the_best_unmatched_truth_of_its_class():
    truth = np.array([[0, 10, 1], [10, 20, 1], [0, 20, 2]])
    found = Detections(np.array([[0, 9, 1], [0, 11, 1], [10, 20, 2]]), np.array([0.5, 0.9, 0.4]))
    # the higher-scored (0, 11) takes (0, 10) first; (0, 9) then finds only (10, 20), IoU 0
    assert detection_hits(found, truth, 0.5).tolist() == [False, True, True]
