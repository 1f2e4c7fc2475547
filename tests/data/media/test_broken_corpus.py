"""Every kind of tests/data/media/broken_corpus.py checked the ways a user meets it (tests/data/media/corpus_checks.py):
`mmmae validate` reports a broken row with its path and reason, a training epoch skips it and counts
it once, an evaluation leaves it out and counts it; a kept row is reported and read without the
broken modality; a broken layout stops validate and training with one message; a valid but awkward
input reads as valid."""

from __future__ import annotations

import contextlib

import pytest

from tests.data.media.broken_corpus import KINDS, Case, Kind, pickle_flag, write_case, write_good
from tests.data.media.corpus_checks import MODALITIES, dataset, one_pass, train, validate

BROKEN = [kind for kind in KINDS if kind.outcome == "row"]
KEPT = [kind for kind in KINDS if kind.outcome == "kept"]
LAYOUT = [kind for kind in KINDS if kind.outcome == "layout"]
FINE = [kind for kind in KINDS if kind.outcome == "fine"]


def ids(kinds: list[Kind]) -> list[str]:
    return [kind.name for kind in kinds]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Case]:
    """Every kind laid out as its own small dataset (the good clips, then the kind's row)."""
    root = tmp_path_factory.mktemp("corpus")
    good = write_good(root / "good")
    return {kind.name: write_case(kind, root / kind.name, good) for kind in KINDS}


def says(kind: Kind, reason: str) -> bool:
    """Whether ``reason`` holds one of the words the kind's reason must (any reason if none are listed)."""
    return not kind.says or any(word in reason.lower() for word in kind.says)


def test_the_corpus_has_at_least_30_broken_kinds():
    assert len(BROKEN) + len(KEPT) + len(LAYOUT) >= 30
    assert {kind.modality for kind in BROKEN + KEPT + LAYOUT} == {"video", "audio", "imu", "caption", "manifest"}
    assert len(set(ids(KINDS))) == len(KINDS)


@pytest.mark.parametrize("kind", BROKEN + KEPT, ids=ids(BROKEN + KEPT))
def test_validate_reports_the_row_with_its_path_and_reason(kind, corpus, tmp_path):
    case = corpus[kind.name]
    status, output, problems = validate(kind, case, tmp_path)
    assert "Traceback" not in output and status == 1 and problems is not None, output
    assert {problem["row"] for problem in problems} == {case.index}, output
    reasons = [problem["reason"] for problem in problems if problem["path"] == case.named]
    assert reasons and says(kind, reasons[0]), f"{problems} name {case.named} saying none of {kind.says}"
    assert case.named in output


@pytest.mark.parametrize("kind", BROKEN, ids=ids(BROKEN))
def test_training_skips_the_row_and_counts_it_once(kind, corpus):
    case = corpus[kind.name]
    data = dataset(kind, case, train=True)
    epoch = one_pass(data)
    assert epoch.bad_samples == 1
    assert len(epoch.samples) == len(data) and {index for index, _ in epoch.samples} == set(range(case.index))


@pytest.mark.parametrize("kind", BROKEN, ids=ids(BROKEN))
def test_evaluation_leaves_the_row_out_and_counts_it(kind, corpus):
    case = corpus[kind.name]
    evaluation = one_pass(dataset(kind, case, train=False))
    assert evaluation.left_out == 1
    assert sorted(index for index, _ in evaluation.samples) == list(range(case.index))


@pytest.mark.parametrize("kind", KEPT + FINE, ids=ids(KEPT + FINE))
def test_training_and_evaluation_use_the_clip(kind, corpus):
    """Every row read, none counted; the kind's absent modalities (only those) marked absent."""
    case = corpus[kind.name]
    for train_set in (True, False):
        epoch = one_pass(dataset(kind, case, train_set))
        assert epoch.bad_samples == 0 and epoch.left_out == 0
        assert sorted(index for index, _ in epoch.samples) == list(range(case.index + 1))
        present = next(present for index, present in epoch.samples if index == case.index)
        assert {m for m in MODALITIES if not present[m]} == set(kind.absent)


@pytest.mark.parametrize("kind", FINE, ids=ids(FINE))
def test_validate_passes_a_valid_input(kind, corpus, tmp_path):
    status, output, problems = validate(kind, corpus[kind.name], tmp_path)
    assert status == 0 and problems == [], output


@pytest.mark.parametrize("kind", LAYOUT, ids=ids(LAYOUT))
def test_a_broken_layout_stops_validate_and_training_with_one_message(kind, corpus, tmp_path):
    """Exit 1 and one line naming the manifest and line (no traceback, no report, no run folder)."""
    case = corpus[kind.name]
    where = f"{case.named}:{case.line}"
    status, output, problems = validate(kind, case, tmp_path)
    assert status == 1 and len(output.strip().splitlines()) == 1 and where in output and problems is None, output
    assert says(kind, output), f"{output!r} says none of {kind.says}"
    status, output = train(case, tmp_path / "run")
    assert status == 1 and len(output.strip().splitlines()) == 1 and where in output, output
    assert not (tmp_path / "run").exists()


def test_a_pickle_bearing_log_is_never_unpickled(corpus, tmp_path):
    kind = next(kind for kind in KINDS if kind.name == "imu_pickle_npz")
    case = corpus[kind.name]
    validate(kind, case, tmp_path)
    for train_set in (True, False):
        with contextlib.suppress(Exception):  # whether it is refused is checked above; here: never unpickled
            one_pass(dataset(kind, case, train_set))
    assert not pickle_flag(case.source.parent).exists()
