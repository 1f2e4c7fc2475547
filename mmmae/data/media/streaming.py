"""Training from shards streamed through HF datasets (data that does not fit on one disk)."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Iterator

import datasets
import gin
import numpy as np
import torch

from mmmae.data.media.dataset import MediaDataset
from mmmae.data.media.errors import MediaError
from mmmae.data.rank_split import split_shards


@gin.configurable(module="mmmae")
class StreamingMediaDataset(MediaDataset, torch.utils.data.IterableDataset):
    """MediaDataset over a stream of rows (e.g. ``@stream_shards``, media held as bytes).

    Training (train=True): an epoch is exactly ``samples_per_epoch`` samples (the length the
    trainer plans epochs with), shared between DataLoader workers as evenly as possible; the
    stream's shards are split between the workers too. Each worker reads its rows shuffled
    within ``shuffle_buffer`` rows by a seed derived from (seed, epoch) and, if they run out
    before its share, reads them again in a new shuffle (seed, epoch, round). ``set_epoch``
    (the trainer calls it) sets the epoch, in the workers too. Row j of worker w's pass (of W)
    has ``index`` j * W + w and draws its clip from (seed, epoch, index), so a pass is the same
    every time; this makes a resumed run's skipped batches and the rest of its epoch bitwise
    those of an uninterrupted run provided every pass yields the batches the trainer plans:
    each worker's share a multiple of the batch size (samples_per_epoch a multiple of
    batch_size * max(1, num_workers)), at least one shard per worker and one process.
    Unreadable rows are logged and skipped, counted on the next sample yielded (bad_samples).
    On several processes the trainer reads through :meth:`for_rank`: each process its own shards
    and samples_per_epoch // world_size samples an epoch, row j of worker w having index
    (j * W + w) * world_size + rank (the one-process index with world_size 1); resuming is
    bitwise exact when samples_per_epoch is a multiple of batch_size * max(1, num_workers) * world_size.
    Evaluation (train=False): one pass over the stream in order, None for an unreadable row
    (``collate`` leaves it out and counts it in left_out). Every other argument is MediaDataset's.
    """

    def __init__(self, source: Callable[[], datasets.IterableDataset] = gin.REQUIRED,
                 samples_per_epoch: int = gin.REQUIRED, shuffle_buffer: int = 256, **kwargs):
        if samples_per_epoch < 1:
            raise ValueError(f"StreamingMediaDataset.samples_per_epoch must be >= 1, got {samples_per_epoch}")
        super().__init__(source, **kwargs)
        self.samples_per_epoch, self.shuffle_buffer = samples_per_epoch, shuffle_buffer
        self.rank, self.world_size = 0, 1

    def __len__(self) -> int:
        return self.samples_per_epoch // self.world_size

    def uneven_epoch(self, batch_size: int, workers: int, world_size: int) -> str | None:
        """Why an epoch read by `workers` loader workers on each of `world_size` processes would not be
        whole batches of batch_size on every worker (a resume would then land elsewhere), or None."""
        unit = batch_size * max(1, workers) * world_size
        if self.samples_per_epoch % unit == 0:
            return None
        fits = max(unit, self.samples_per_epoch // unit * unit)
        return (f"StreamingMediaDataset.samples_per_epoch = {self.samples_per_epoch} is not a multiple of batch_size "
                f"{batch_size} x max(1, num_workers) {max(1, workers)} x processes {world_size} = {unit}: epochs "
                f"would end in partial batches and --resume would not continue where the run stopped; use "
                f"{fits} (or change pretrain.batch_size / pretrain.num_workers)")

    def for_rank(self, rank: int, world_size: int, workers: int) -> StreamingMediaDataset:
        """This dataset as process `rank` of `world_size` reads it (mmmae.data.rank_split.split_shards:
        its own shards, for `workers` loader workers), sharing the epoch with this one."""
        part = copy.copy(self)
        part.rows = split_shards(self.rows, rank, world_size, workers)
        part.rank, part.world_size = rank, world_size
        return part

    def __getitem__(self, index: int):
        raise TypeError("StreamingMediaDataset is iterable only")

    def __iter__(self) -> Iterator[dict | list[dict] | None]:
        worker = torch.utils.data.get_worker_info()
        workers, worker_id = (worker.num_workers, worker.id) if worker is not None else (1, 0)
        if not self.train:
            for position, row in enumerate(self.rows):
                clips = self.read_or_report(row, position * workers + worker_id)
                yield None if clips is None else self.sample(clips, 0)
            return
        share = len(self) // workers + (worker_id < len(self) % workers)
        yielded = skipped = position = 0
        for round_ in itertools.count():
            before = yielded
            for row in self._shuffled(round_):
                if yielded == share:
                    return
                clips = self.read_or_report(row, (position * workers + worker_id) * self.world_size + self.rank)
                position += 1
                if clips is None:
                    skipped += 1
                    continue
                yield self.sample(clips, skipped)
                yielded, skipped = yielded + 1, 0
            if yielded == share or position == 0:  # done, or this worker holds no shard
                return
            if yielded == before:
                raise MediaError(f"{position} rows", "no row of this worker's shards could be read: the warnings "
                                                     "above name the files and why")

    def _shuffled(self, round_: int) -> datasets.IterableDataset:
        """This worker's rows, shuffled by a seed derived from (seed, epoch, round)."""
        seed = int(np.random.SeedSequence([self.seed, self.epoch, round_]).generate_state(1)[0])
        return self.rows.shuffle(seed=seed, buffer_size=self.shuffle_buffer)
