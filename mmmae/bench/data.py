"""`mmmae bench data`: does loading keep up with training? Decoded clips/s of a recipe's data
pipeline against the clips/s its model consumes, both measured here, in the same process."""

from __future__ import annotations

import inspect
import itertools
import time
from collections.abc import Iterator

import gin
import torch
from torch.utils.data import DataLoader, IterableDataset, default_collate

from mmmae.masking.rng import MaskRNG
from mmmae.optim import build_optimizer
from mmmae.train import drop_non_finite, pretrain


def pretrain_setting(name: str):
    """The recipe's `pretrain.<name>`, or pretrain's default when the recipe does not bind it."""
    try:
        return gin.query_parameter(f"pretrain.{name}")
    except ValueError:
        return inspect.signature(pretrain).parameters[name].default


def batches_of(dataset, batch_size: int, workers: int, prefetch: int) -> Iterator[dict]:
    """Shuffled batches from a DataLoader like pretrain's, endlessly."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=not isinstance(dataset, IterableDataset),
                        num_workers=workers, drop_last=True, collate_fn=getattr(dataset, "collate", None),
                        prefetch_factor=prefetch if workers else None, persistent_workers=workers > 0)
    return itertools.chain.from_iterable(itertools.repeat(loader))


def loader_rate(batches: Iterator[dict], count: int) -> float:
    """Clips/s the loader delivers after its first batch (workers started)."""
    clips = len(next(batches)["index"])
    tic = time.perf_counter()
    for _ in range(count):
        next(batches)
    return clips * count / (time.perf_counter() - tic)


def model_rate(model: torch.nn.Module, batches: Iterator[dict], steps: int) -> float:
    """Clips/s of pretraining steps (forward, backward, AdamW) on the batches, after a first untimed step."""
    optimizer, _ = build_optimizer(model, 1e-4, 0.05, (0.9, 0.95), steps + 1, 0, 0.0)
    clips = 0
    for step in range(steps + 1):
        if step == 1:  # the first step allocates; time the rest
            tic = time.perf_counter()
        batch = next(batches)
        batch, _ = drop_non_finite({k: v for k, v in batch.items() if k != "bad_samples"}, list(model.modalities))
        clips += len(batch["index"]) if step else 0
        out = model(batch, MaskRNG.seeded(step))
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return clips / (time.perf_counter() - tic)


def bench_data(batches: int = 10, steps: int = 5, workers: int | None = None) -> dict:
    """Rates of the parsed recipe: its pretrain.dataset loaded with `workers` processes (default:
    the recipe's num_workers), `batches` batches; its model for `steps` steps on one batch held in
    memory; and the model fed by that loader, as in training (the workers then share the CPU with
    the step). ratio = loading / consumption (> 1: the model need not wait); fed_over_held < 1
    is what waiting on data, or the workers' share of the CPU, costs the step."""
    dataset = gin.query_parameter("pretrain.dataset").scoped_configurable_fn()
    model = gin.query_parameter("pretrain.model").scoped_configurable_fn()
    batch_size = pretrain_setting("batch_size")
    workers = pretrain_setting("num_workers") if workers is None else workers
    samples = itertools.islice(iter(dataset), batch_size) if isinstance(dataset, IterableDataset) else (
        dataset[i] for i in range(batch_size))
    held = getattr(dataset, "collate", default_collate)(list(samples))
    consume = model_rate(model.train(), itertools.repeat(held), steps)  # before any worker starts
    stream = batches_of(dataset, batch_size, workers, pretrain_setting("prefetch_factor"))
    load = loader_rate(stream, batches)
    fed = model_rate(model, stream, steps)
    return {"dataset": type(dataset).__name__, "batch_size": batch_size, "workers": workers,
            "threads": torch.get_num_threads(), "load_clips_per_s": load, "model_clips_per_s": consume,
            "ratio": load / consume, "fed_clips_per_s": fed, "fed_over_held": fed / consume}


def format_data_bench(result: dict) -> str:
    return (f"data: {result['load_clips_per_s']:.1f} clips/s ({result['dataset']}, batch {result['batch_size']}, "
            f"{result['workers']} workers); model: {result['model_clips_per_s']:.1f} clips/s "
            f"({result['threads']} threads); loading / consumption = {result['ratio']:.2f}x; fed by the loader: "
            f"{result['fed_clips_per_s']:.1f} clips/s = {result['fed_over_held']:.2f}x the held-batch rate")
