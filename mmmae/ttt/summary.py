"""Scores of a test-time training walk: accuracy with and without adaptation, over the stream and
over consecutive parts of it, with 95 % intervals and a paired sign test."""

from collections.abc import Sequence

from scipy.stats import binomtest

from mmmae.eval.interval import wilson_interval


def scores(records: Sequence[dict]) -> dict:
    """{items, ttt / frozen: {accuracy, interval}, paired: {ttt_only, frozen_only, p_value}} of some
    walk records. paired counts the items only one of the two got right; p_value is the two-sided
    exact sign test (McNemar's) that each is equally likely (1.0 when they never disagree)."""
    count = len(records)
    arms = {}
    for arm in ("ttt", "frozen"):
        accuracy = sum(r[f"{arm}_correct"] for r in records) / count
        arms[arm] = {"accuracy": accuracy, "interval": wilson_interval(accuracy, count)}
    ttt_only = sum(r["ttt_correct"] and not r["frozen_correct"] for r in records)
    frozen_only = sum(r["frozen_correct"] and not r["ttt_correct"] for r in records)
    disagree = ttt_only + frozen_only
    p_value = binomtest(ttt_only, disagree).pvalue if disagree else 1.0
    return {"items": count, **arms, "paired": {"ttt_only": ttt_only, "frozen_only": frozen_only,
                                               "p_value": float(p_value)}}


def summarize(records: Sequence[dict], parts: int) -> dict:
    """scores over the whole stream ('stream') and over `parts` consecutive, near-equal parts of it
    ('parts', each with its first and last item and its drift range when the records have one)."""
    if not records:
        raise ValueError("the walk has no records: the stream is empty")
    parts = min(parts, len(records))
    bounds = [round(i * len(records) / parts) for i in range(parts + 1)]
    pieces = []
    for start, end in zip(bounds, bounds[1:]):
        chunk = records[start:end]
        drift = {"drift": [chunk[0]["drift"], chunk[-1]["drift"]]} if "drift" in chunk[0] else {}
        pieces.append({"first": chunk[0]["item"], "last": chunk[-1]["item"], **drift, **scores(chunk)})
    return {"stream": scores(records), "parts": pieces}


def summary_lines(summary: dict) -> list[str]:
    """A readable table: accuracy with and without TTT, over the stream and each part."""

    def line(name: str, s: dict) -> str:
        ttt, frozen, paired = s["ttt"], s["frozen"], s["paired"]
        return (f"{name:<30} {s['items']:>5} items  TTT {ttt['accuracy']:.3f} [{ttt['interval'][0]:.3f}, "
                f"{ttt['interval'][1]:.3f}]  frozen {frozen['accuracy']:.3f} [{frozen['interval'][0]:.3f}, "
                f"{frozen['interval'][1]:.3f}]  only TTT {paired['ttt_only']}, only frozen {paired['frozen_only']}, "
                f"sign test p={paired['p_value']:.3g}")

    lines = [line("stream", summary["stream"])]
    for part in summary["parts"]:
        drift = f" drift {part['drift'][0]:.2f}-{part['drift'][1]:.2f}" if "drift" in part else ""
        lines.append(line(f"items {part['first']}-{part['last']}{drift}", part))
    return lines
