"""Stop a training run by an exception right after a given step is logged: the exact-resume tests' kill."""

from collections.abc import Callable

import pytest

import mmmae.train


class Interrupted(Exception):
    """Stands in for a kill: raised from inside the loop."""


def run_until_interrupted(train: Callable[[], object], monkeypatch: pytest.MonkeyPatch, at_step: int = 5) -> None:
    """Call `train()`, which must be stopped by Interrupted once step `at_step` is logged."""
    original = mmmae.train.log_metrics

    def interrupting(accelerator, run_dir, step, *args):
        record = original(accelerator, run_dir, step, *args)
        if step == at_step:
            raise Interrupted
        return record

    with monkeypatch.context() as patch:
        patch.setattr(mmmae.train, "log_metrics", interrupting)
        with pytest.raises(Interrupted):
            train()
