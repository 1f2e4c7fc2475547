"""Training from shards streamed through HF datasets (data that does not fit on one disk)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import datasets
import gin
import torch

from mmmae.data.media_dataset import MediaDataset


@gin.configurable(module="mmmae")
class StreamingMediaDataset(MediaDataset, torch.utils.data.IterableDataset):
    """MediaDataset over a stream of rows (e.g. ``@stream_shards``, media held as bytes).

    An epoch is one pass over the stream, shuffled within ``shuffle_buffer`` rows by a seed
    that changes with the epoch (``set_epoch`` sets it, each pass then counts on); the
    stream's shards are split between DataLoader workers. ``samples_per_epoch`` (the number of
    rows, which a stream cannot know) sets the length the trainer plans epochs with; ``index``
    in a sample is its position in the worker's pass, not a row id. Unreadable rows are skipped and counted as
    in MediaDataset (on the next sample yielded). Every other argument is MediaDataset's.
    """

    def __init__(self, source: Callable[[], datasets.IterableDataset] = gin.REQUIRED,
                 samples_per_epoch: int = gin.REQUIRED, shuffle_buffer: int = 256, seed: int = 0, **kwargs):
        if samples_per_epoch < 1:
            raise ValueError(f"StreamingMediaDataset.samples_per_epoch must be >= 1, got {samples_per_epoch}")
        super().__init__(source, **kwargs)
        self.samples_per_epoch, self.shuffle_buffer, self.seed, self.epoch = samples_per_epoch, shuffle_buffer, seed, 0

    def __len__(self) -> int:
        return self.samples_per_epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, index: int):
        raise TypeError("StreamingMediaDataset is iterable only")

    def __iter__(self) -> Iterator[dict | list[dict]]:
        # Each pass counts as the next epoch: persistent DataLoader workers hold their own copy,
        # which the trainer's set_epoch (on the main process's copy) no longer reaches.
        epoch, self.epoch = self.epoch, self.epoch + 1
        rows = self.rows.shuffle(seed=self.seed + epoch, buffer_size=self.shuffle_buffer) if self.train else self.rows
        skipped = 0
        for index, row in enumerate(rows):
            clips = self.read_or_report(row, index)
            if clips is None:
                skipped += 1
                continue
            yield self.sample(clips, skipped)
            skipped = 0
