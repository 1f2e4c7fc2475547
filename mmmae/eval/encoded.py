"""A frozen encoder's output for a dataset, batch by batch: pooled features or all tokens."""

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from accelerate.utils import send_to_device

from mmmae.eval.frozen import frozen, present_rows
from mmmae.eval.loader import EvalLoader


@dataclass
class EncodedBatch:
    """One batch's encodings, on the CPU in float32, of the rows that have the modality.

    features: (b, D) pooled (Encoder.pool), or (b, N, D) every token; None when b = 0.
    valid: (b, N) bool, False on padding, or None (nothing padded).
    positions: (b,) int64 positions of these rows in the dataset.
    batch: the collated batch, all B rows; present: (B,) bool, which rows have the modality.
    """

    features: torch.Tensor | None
    valid: torch.Tensor | None
    positions: torch.Tensor
    batch: dict
    present: torch.Tensor


def encoded_batches(model, loader: EvalLoader, modality: str, pooled: bool = True) -> Iterator[EncodedBatch]:
    """The loader's batches in order (unreadable samples left out, counted in loader.left_out),
    encoded frozen (unmasked, the modality alone); a batch in which no sample has the modality
    is not encoded (features None)."""
    with frozen(model) as device:
        for positions, batch in loader:
            present = present_rows(batch, modality)
            positions = positions[present]
            if not present.any():
                yield EncodedBatch(None, None, positions, batch, present)
                continue
            encoded, valid = model.encode({modality: send_to_device(batch[modality], device)}, modality)
            features = model.encoder.pool(encoded, valid) if pooled else encoded
            valid = None if valid is None or pooled else valid.cpu()[present]
            yield EncodedBatch(features.float().cpu()[present], valid, positions, batch, present)
