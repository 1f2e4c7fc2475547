"""Every process reads its own part of a streamed (iterable) dataset.

Accelerate's default for an iterable dataset on N processes reads every batch on rank 0 and
sends each rank its slice (``dispatch_batches``); without dispatching, every rank reads the
whole stream and keeps its slice (``IterableDatasetShard``). Either way one process decodes,
or every process reads, all the data. Here a stream that can split itself, ``for_rank(rank,
world_size, workers)`` (StreamingMediaDataset does, by HF datasets' ``split_dataset_by_node``),
gives every rank its own shards, and its DataLoader is prepared for the device without being
dispatched or sharded again. Map-style datasets keep Accelerate's sampler sharding.
"""

from __future__ import annotations

import logging

import datasets
from accelerate import Accelerator
from accelerate.data_loader import prepare_data_loader
from datasets.distributed import split_dataset_by_node
from torch.utils.data import DataLoader, IterableDataset

from mmmae.config import binding_error

logger = logging.getLogger(__name__)

WORKERS_BINDING = r"([\w/]+/)?pretrain\.num_workers\s*="
DATASET_BINDING = r"([\w/]+/)?pretrain\.dataset\s*="


def own_part(data: IterableDataset, rank: int, world_size: int, workers: int) -> IterableDataset:
    """The part of stream `data` that process `rank` of `world_size` reads (`data` itself on one
    process); a stream without ``for_rank`` is a ConfigError naming ``pretrain.dataset``."""
    if world_size == 1:
        return data
    if not hasattr(data, "for_rank"):
        raise binding_error(f"pretrain.dataset: {type(data).__name__} is a stream (an IterableDataset) without "
                            f"for_rank(rank, world_size, workers), so its {world_size} processes cannot each read "
                            "their own part of it; give it that method (StreamingMediaDataset has one) or use a "
                            "map-style dataset", DATASET_BINDING)
    return data.for_rank(rank, world_size, workers)


def split_shards(rows: datasets.IterableDataset, rank: int, world_size: int, workers: int) -> datasets.IterableDataset:
    """Process `rank`'s rows of a sharded HF stream. Shards a multiple of world_size: every process
    reads only its own shards. Otherwise (HF's fallback): every process reads every shard and keeps
    one row in world_size, the same rows as it would decode alone, at world_size times the reading
    (a warning says so). Either way each of a process's `workers` loader workers must hold a shard
    of its own: fewer is a ConfigError naming ``pretrain.num_workers``."""
    shards = rows.num_shards
    divides = shards % world_size == 0
    per_process = shards // world_size if divides else shards
    if per_process < max(1, workers):
        raise binding_error(
            f"pretrain.num_workers = {workers} on {world_size} processes: the stream has {shards} shards, "
            f"{per_process} for each process's loader workers, and each worker reads whole shards; write at least "
            f"{max(1, workers) * world_size} shards (a multiple of {world_size}; `mmmae shard --per_shard`) or lower "
            "pretrain.num_workers", WORKERS_BINDING)
    if not divides and rank == 0:
        logger.warning("%d shards do not divide among %d processes: every process reads every shard and keeps one "
                       "row in %d (write a multiple of %d shards so that each reads only its own)", shards, world_size,
                       world_size, world_size)
    return split_dataset_by_node(rows, rank=rank, world_size=world_size)


def prepare_stream_loader(accelerator: Accelerator, loader: DataLoader) -> DataLoader:
    """`loader`, over this process's own part of a stream, as Accelerate prepares loaders (batches
    moved to accelerator.device, skip_first_batches, end-of-epoch for gradient accumulation), but
    neither dispatched from rank 0 nor sharded again. Marked as prepared, so that
    ``accelerator.prepare`` registers it (checkpoints, gradient accumulation) as it is."""
    prepared = prepare_data_loader(loader, accelerator.device, num_processes=1, process_index=0,
                                   put_on_device=accelerator.device_placement, dispatch_batches=False,
                                   non_blocking=accelerator.non_blocking)
    prepared._is_accelerate_prepared = True  # Accelerator.prepare_data_loader returns such a loader unchanged
    return prepared
