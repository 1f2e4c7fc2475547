"""Print docs/reliability.md's corpus table: every kind of tests/data/media/broken_corpus.py, what `mmmae
validate` says of it, and what a training epoch and an evaluation pass do with it (measured now).

    python -m tests.data.media.corpus_table 2>/dev/null   # stderr: the skipped rows' warnings
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from tests.data.media.broken_corpus import KINDS, Case, Kind, write_case, write_good
from tests.data.media.corpus_checks import MODALITIES, dataset, one_pass, train, validate

HEADER = ("| kind | input | expected | `mmmae validate` says | training epoch | evaluation pass |\n"
          "|---|---|---|---|---|---|")


def _short(text: str, case: Case) -> str:
    """``text`` on one line, paths relative to the corpus folder, table-safe."""
    root = case.source.parent.parent if case.source.is_file() else case.source.parent
    text = text.replace(f"{case.source.parent if case.source.is_file() else case.source}/", "").replace(f"{root}/", "")
    return " ".join(text.split()).replace("|", "\\|")


def _validate(kind: Kind, case: Case, folder: Path) -> str:
    status, output, problems = validate(kind, case, folder)
    if problems is None:  # a layout refused whole: the message
        lines = [line for line in output.splitlines() if line.strip() and "validate pretrain" not in line]
        return f"exit {status}: {_short(' '.join(lines), case)}"
    if not problems:
        return f"exit {status}: no problem"
    return f"exit {status}: " + "; ".join(f"row {p['row']} {p['column']}: {_short(p['reason'], case)}"
                                          for p in problems)


def _pass(kind: Kind, case: Case, train_set: bool, folder: Path) -> str:
    """What one pass does with the kind's row, in words."""
    if kind.outcome == "layout":
        if not train_set:
            return "(the layout is refused)"
        status, output = train(case, folder / "run")
        lines = output.splitlines()
        message = [line for line in lines if line.startswith("mmmae train")][:1] or lines[-1:]
        written = "nothing written" if not (folder / "run").exists() else "run folder written"
        return f"`mmmae train` exit {status}, {written}: {_short(' '.join(message), case)}"
    try:
        result = one_pass(dataset(kind, case, train_set))
    except Exception as error:  # noqa: BLE001 - the table reports whatever happens
        return f"fails: {type(error).__name__}: {_short(str(error), case)}"
    seen = [index for index, _ in result.samples]
    if case.index in seen:
        present = next(present for index, present in result.samples if index == case.index)
        absent = [m for m in MODALITIES if not present[m]]
        kept = f"used ({', '.join(absent)} absent)" if absent else "used"
        return f"{kept}; bad_samples {result.bad_samples}, left_out {result.left_out}"
    duplicates = len(seen) - len(set(seen))
    counted = f"bad_samples {result.bad_samples}" if train_set else f"left_out {result.left_out}"
    replaced = ", replaced by a random row" if train_set and len(seen) > case.index else ""
    return f"skipped{replaced}; {counted}" + (f"; {duplicates} duplicates" if duplicates and not train_set else "")


def main() -> None:
    with tempfile.TemporaryDirectory() as root:
        good = write_good(Path(root) / "good")
        print(HEADER)
        for kind in KINDS:
            folder = Path(root) / "checks" / kind.name
            folder.mkdir(parents=True)
            case = write_case(kind, Path(root) / kind.name, good)
            cells = (kind.name, kind.modality, kind.outcome, _validate(kind, case, folder),
                     _pass(kind, case, True, folder), _pass(kind, case, False, folder))
            print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
