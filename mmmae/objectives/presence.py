"""Which samples an objective can use: those that have every modality it needs."""

from collections.abc import Sequence

import torch


def usable_samples(objective: str, modalities: Sequence[str], outputs: dict, batch: dict,
                   strict: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(B,) bool of samples with all `modalities` present, and the log of how many were skipped.

    strict: a skipped sample is an error naming the objective, the modalities and the samples'
    batch["index"] (positions in the batch when the batch has no index).
    """
    usable = torch.stack([outputs[m].present for m in modalities]).all(dim=0)
    skipped = (~usable).sum()
    if strict and skipped:
        rows = (~usable).nonzero().flatten()
        where = batch["index"][rows.to(batch["index"].device)] if "index" in batch else rows
        raise ValueError(f"{objective}: samples {where.tolist()} lack one of the modalities {list(modalities)} "
                         f"it needs (set strict = False to skip such samples)")
    return usable, {f"{objective}_skipped": skipped.detach().float()}
