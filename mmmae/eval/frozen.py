"""What every evaluation of a frozen encoder shares: the model frozen on its device, a clear
error for a modality it lacks, and which samples of a batch have a modality
(batch[f"{m}_present"]; those that lack it are dropped)."""

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from accelerate.utils import find_batch_size


@contextmanager
def frozen(model: torch.nn.Module) -> Iterator[torch.device]:
    """Eval mode and no gradients inside; the model's train/eval mode is restored after. Yields its device."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield next(model.parameters()).device
    finally:
        model.train(was_training)


def check_modality(model, modality: str, owner: str) -> None:
    """A clear error, naming the evaluation `owner`, when the model does not have `modality`."""
    if modality not in model.modalities:
        raise ValueError(f"{owner}: the model has no modality {modality!r} (it has {list(model.modalities)})")


def present_rows(batch: dict, modality: str) -> torch.Tensor:
    """(B,) bool on the CPU: which samples of a collated batch have `modality` (all without a flag)."""
    if modality not in batch:
        raise KeyError(f"modality {modality!r} is not in the data's samples (keys: {sorted(batch)})")
    flag = batch.get(f"{modality}_present")
    if flag is None:
        return torch.ones(find_batch_size(batch[modality]), dtype=torch.bool)
    return flag.to("cpu", torch.bool)
