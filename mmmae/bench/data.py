"""`mmmae bench data`: does loading keep up with training? Decoded clips/s of a recipe's data
pipeline against the clips/s its model consumes, both measured here, in the same process."""

from __future__ import annotations

import inspect
import itertools
import time

import gin
import torch
from torch.utils.data import DataLoader, default_collate

from mmmae.masking.rng import MaskRNG
from mmmae.optim import build_optimizer
from mmmae.train import drop_non_finite, pretrain


def pretrain_setting(name: str):
    """The recipe's `pretrain.<name>`, or pretrain's default when the recipe does not bind it."""
    try:
        return gin.query_parameter(f"pretrain.{name}")
    except ValueError:
        return inspect.signature(pretrain).parameters[name].default


def loader_rate(dataset, batch_size: int, workers: int, batches: int, prefetch: int = 2) -> float:
    """Clips/s a DataLoader delivers after its first batch (workers started, files cached by the OS)."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers, drop_last=True,
                        collate_fn=getattr(dataset, "collate", None), prefetch_factor=prefetch if workers else None)
    stream = iter(itertools.cycle(loader) if len(loader) < batches + 1 else loader)
    first = next(stream)
    clips = len(first["index"])
    tic = time.perf_counter()
    for _ in range(batches):
        next(stream)
    return clips * batches / (time.perf_counter() - tic)


def model_rate(model: torch.nn.Module, batch: dict, steps: int) -> float:
    """Clips/s of pretraining steps (forward, backward, AdamW) on one batch held in memory."""
    optimizer, _ = build_optimizer(model, 1e-4, 0.05, (0.9, 0.95), steps + 1, 0, 0.0)
    batch, _ = drop_non_finite({k: v for k, v in batch.items() if k != "bad_samples"}, list(model.modalities))
    clips = len(batch["index"])
    for step in range(steps + 1):
        if step == 1:  # the first step allocates; time the rest
            tic = time.perf_counter()
        out = model(batch, MaskRNG.seeded(step))
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return clips * steps / (time.perf_counter() - tic)


def bench_data(batches: int = 10, steps: int = 5, workers: int | None = None) -> dict:
    """Load `batches` batches of the parsed recipe's pretrain.dataset with `workers` processes
    (default: the recipe's num_workers) and time `steps` model steps; returns both rates and
    loading / consumption (> 1: the model never waits on data)."""
    dataset = gin.query_parameter("pretrain.dataset").scoped_configurable_fn()
    model = gin.query_parameter("pretrain.model").scoped_configurable_fn()
    batch_size = pretrain_setting("batch_size")
    workers = pretrain_setting("num_workers") if workers is None else workers
    load = loader_rate(dataset, batch_size, workers, batches, pretrain_setting("prefetch_factor"))
    collate = getattr(dataset, "collate", default_collate)
    consume = model_rate(model.train(), collate([dataset[i] for i in range(batch_size)]), steps)
    return {"dataset": type(dataset).__name__, "batch_size": batch_size, "workers": workers,
            "threads": torch.get_num_threads(), "load_clips_per_s": load, "model_clips_per_s": consume,
            "ratio": load / consume}


def format_data_bench(result: dict) -> str:
    return (f"data: {result['load_clips_per_s']:.1f} clips/s ({result['dataset']}, batch {result['batch_size']}, "
            f"{result['workers']} workers); model: {result['model_clips_per_s']:.1f} clips/s "
            f"({result['threads']} threads); loading / consumption = {result['ratio']:.2f}x")
