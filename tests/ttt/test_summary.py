"""Scores of a walk: accuracies with intervals, consecutive parts, the paired sign test."""

import pytest

from mmmae.eval.interval import wilson_interval
from mmmae.ttt.summary import scores, summarize, summary_lines


def records(ttt: list[bool], frozen: list[bool]) -> list[dict]:
    count = len(ttt)
    return [{"item": t, "drift": t / (count - 1), "ttt_correct": a, "frozen_correct": b}
            for t, (a, b) in enumerate(zip(ttt, frozen))]


def test_scores_count_both_arms_and_their_disagreements():
    s = scores(records([True] * 6 + [False] * 2, [False] * 5 + [True] * 3))
    assert s["items"] == 8 and s["ttt"]["accuracy"] == 6 / 8 and s["frozen"]["accuracy"] == 3 / 8
    assert s["ttt"]["interval"] == wilson_interval(6 / 8, 8)
    assert s["paired"]["ttt_only"] == 5 and s["paired"]["frozen_only"] == 2
    assert s["paired"]["p_value"] == pytest.approx(2 * (1 + 7 + 21) / 2 ** 7)  # two-sided, 2 of 7 disagreements


def test_arms_that_never_disagree_have_p_value_one():
    assert scores(records([True, False, True], [True, False, True]))["paired"]["p_value"] == 1.0


def test_parts_are_consecutive_and_cover_the_stream():
    walk = records([t % 2 == 0 for t in range(10)], [True] * 10)
    summary = summarize(walk, parts=3)
    assert [(p["first"], p["last"]) for p in summary["parts"]] == [(0, 2), (3, 6), (7, 9)]
    assert sum(p["items"] for p in summary["parts"]) == summary["stream"]["items"] == 10
    assert summary["parts"][-1]["drift"] == [7 / 9, 1.0]
    assert len(summary_lines(summary)) == 4


def test_more_parts_than_items_gives_one_item_each_and_an_empty_walk_is_refused():
    assert len(summarize(records([True, False], [True, True]), parts=5)["parts"]) == 2
    with pytest.raises(ValueError, match="empty"):
        summarize([], parts=2)
