"""How long a training loop waits for its batches (the data-wait time the trainer logs per rank)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

Batch = TypeVar("Batch")
_END = object()


class DataWait:
    """Seconds spent waiting for the next batch of the loaders :meth:`timed` wraps, since the last :meth:`take`."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def timed(self, batches: Iterable[Batch]) -> Iterator[Batch]:
        """`batches` one by one, each wait for the next one (the end too) added to ``seconds``."""
        iterator = iter(batches)
        while True:
            tic = time.perf_counter()
            batch = next(iterator, _END)
            self.seconds += time.perf_counter() - tic
            if batch is _END:
                return
            yield batch

    def take(self) -> float:
        """The seconds waited since the last call; starts counting again from zero."""
        seconds, self.seconds = self.seconds, 0.0
        return seconds
