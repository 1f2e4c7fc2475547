"""Evaluation data in batches: each dataset's own collate; unreadable samples left out and counted, never replaced."""

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, default_collate


class EvalLoader:
    """`dataset` in batches of `batch_size`, in order (shuffled by `generator` with `shuffle`),
    collated by the dataset's `collate` when it has one, else by torch's default_collate.

    An evaluation set returns None for a sample it cannot read (MediaDataset with train=False);
    its collate drops those and puts their number in the batch as `left_out`. Iterating pops
    that entry and adds it to `left_out` (the count of the current pass) and skips a batch
    with no sample left, so no sample is ever seen twice. Yields (positions, batch):
    positions (b,) int64, the kept samples' places in the pass (the dataset positions when
    not shuffled), a sample of k clips (clips_per_video) once per clip, like its batch rows.
    """

    def __init__(self, dataset: Dataset, batch_size: int, shuffle: bool = False,
                 generator: torch.Generator | None = None):
        self.collate = getattr(dataset, "collate", None) or default_collate
        self.loader = DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator,
                                 collate_fn=self._collate)
        self.left_out = 0

    def __len__(self) -> int:
        return len(self.loader)

    def _collate(self, samples: list) -> tuple[torch.Tensor, int, dict]:
        """The kept samples' offsets in this batch (one per clip), the batch's size and the collated batch."""
        kept = [(i, len(s) if isinstance(s, list) else 1) for i, s in enumerate(samples) if s is not None]
        offsets = torch.tensor([i for i, clips in kept for _ in range(clips)], dtype=torch.int64)
        return offsets, len(samples), self.collate(samples)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, dict]]:
        self.left_out, seen = 0, 0
        for offsets, size, batch in self.loader:
            self.left_out += int(batch.pop("left_out", 0))
            positions, seen = seen + offsets, seen + size
            if batch:
                yield positions, batch


def no_samples_error(owner: str, modality: str, absent: int, left_out: int) -> ValueError:
    """The error for a split with no usable sample: `owner` names the evaluation and split (e.g.
    "LinearProbe.test_data"), with how many lacked `modality` and how many were unreadable."""
    return ValueError(f"{owner}: no sample has the modality {modality!r} ({absent} without it, {left_out} left out "
                      "as unreadable: the warnings above name their files and why)")
