"""Batch checks at the model's door: signals with NaN or Inf are reported, never trained on."""

import logging

import torch

logger = logging.getLogger(__name__)


def _finite_rows(value) -> torch.Tensor:
    """(B,) bool: samples whose (possibly nested dict of) float tensors are all finite."""
    if isinstance(value, dict):
        return torch.stack([_finite_rows(v) for v in value.values()]).all(dim=0)
    if not value.is_floating_point():
        return torch.ones(value.shape[0], dtype=torch.bool, device=value.device)
    return torch.isfinite(value.flatten(1)).all(dim=1)


def _zero_rows(value, rows: torch.Tensor):
    if isinstance(value, dict):
        return {k: _zero_rows(v, rows) for k, v in value.items()}
    if not value.is_floating_point():
        return value
    return value.masked_fill(rows.view(-1, *([1] * (value.ndim - 1))), 0.0)


def drop_non_finite(batch: dict, modalities: list[str]) -> tuple[dict, int]:
    """Mark samples whose modality input holds NaN or Inf as lacking that modality.

    The bad values are zeroed and batch[f"{m}_present"] set False for those samples, so no
    loss uses them; each one is logged with its batch["index"]. Returns the batch and the
    number of (sample, modality) pairs dropped.
    """
    bad = {m: ~_finite_rows(batch[m]) for m in modalities}
    counts = dict(zip(modalities, torch.stack([b.sum() for b in bad.values()]).tolist()))  # one host sync
    for m, count in counts.items():
        if not count:
            continue
        rows = bad[m].nonzero().flatten()
        where = batch["index"][rows].tolist() if "index" in batch else rows.tolist()
        logger.warning("modality %r: samples %s hold NaN or Inf; they are not trained on for this modality", m, where)
        present = batch.get(f"{m}_present", torch.ones_like(bad[m]))
        batch = dict(batch, **{m: _zero_rows(batch[m], bad[m]), f"{m}_present": present & ~bad[m]})
    return batch, sum(counts.values())
