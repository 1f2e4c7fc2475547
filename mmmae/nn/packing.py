"""Packed token layouts: several modalities and samples back to back in one (T, D) tensor.

Tokens are laid out sample-major: sample 0's modalities in order, then sample 1's, ...; a
modality a sample lacks, and padding, take no room. Attention runs within sequences; two groupings of the
same layout are built: ``separate`` (one sequence per sample and modality) and ``joint`` (one
sequence per sample, all its modalities together).
"""

import functools
from collections.abc import Sequence

import torch


class Packing:
    """Sequences of lengths `seqlens` stored back to back: tokens 0..seqlens[0]-1 are the
    first sequence, and so on. `groups` bundles equal-length sequences for batched kernels:
    a list of (index (n, L) of their tokens, or None when one group is the whole tensor)."""

    def __init__(self, seqlens: Sequence[int], device: torch.device):
        self.seqlens = [int(n) for n in seqlens if n > 0]
        self.total = sum(self.seqlens)
        lengths = torch.tensor(self.seqlens, dtype=torch.long)
        starts = torch.cumsum(lengths, 0) - lengths
        self.groups: list[tuple[torch.Tensor | None, int, int]] = []
        for length in sorted(set(self.seqlens)):
            chosen = starts[lengths == length]
            if len(chosen) * length == self.total:
                self.groups.append((None, len(chosen), length))
            else:
                index = (chosen[:, None] + torch.arange(length)).to(device)
                self.groups.append((index, len(chosen), length))


class PackedLayout:
    """Where each modality's tokens sit in the packed tensor.

    masks: {modality: (B, L_m) bool}, True for the tokens that take part (False for padding
    and for every token of a sample that lacks the modality). `index[m]` (B, L_m) holds each
    token's packed position (meaningful where the mask is True).
    """

    def __init__(self, masks: dict[str, torch.Tensor], device: torch.device):
        self.names = list(masks)
        self.masks = {m: mask.to("cpu", torch.bool) for m, mask in masks.items()}
        counts = torch.stack([self.masks[m].sum(dim=1) for m in self.names], dim=1)  # (B, M)
        flat = counts.flatten()
        starts = (torch.cumsum(flat, 0) - flat).view_as(counts)
        self.index, self.where = {}, {}
        for j, m in enumerate(self.names):
            rank = torch.cumsum(self.masks[m].long(), dim=1) - 1
            self.index[m] = (starts[:, j, None] + rank)[self.masks[m]].to(device)
            self.where[m] = tuple(i.to(device) for i in self.masks[m].nonzero(as_tuple=True))
        self.separate = Packing(flat.tolist(), device)
        self.joint = Packing(counts.sum(dim=1).tolist(), device)

    def pack(self, parts: dict[str, torch.Tensor]) -> torch.Tensor:
        """{m: (B, L_m, D)} -> (T, D) in sample-major order, masked-out tokens dropped."""
        first = parts[self.names[0]]
        dtype = functools.reduce(torch.promote_types, [parts[m].dtype for m in self.names])  # autocast mixes them
        out = first.new_zeros(self.separate.total, first.shape[-1], dtype=dtype)
        for m in self.names:
            out = out.index_put((self.index[m],), parts[m][self.where[m]].to(dtype))
        return out

    def unpack(self, x: torch.Tensor, shapes: dict[str, tuple[int, int]]) -> dict[str, torch.Tensor]:
        """(T, D) -> {m: (B, L_m, D)} with zeros at masked-out tokens."""
        return {m: x.new_zeros(*shapes[m], x.shape[-1]).index_put(self.where[m], x[self.index[m]])
                for m in self.names}


def token_masks(parts: dict[str, torch.Tensor], present: dict[str, torch.Tensor | None],
                valid: dict[str, torch.Tensor | None] | None = None) -> dict[str, torch.Tensor]:
    """{m: (B, L_m) bool}: tokens of samples that have m (present[m] (B,) bool, None: all of
    them), and that are not padding (valid[m] (B, L_m) bool, None: none)."""
    masks = {}
    for m, x in parts.items():
        if present[m] is None:
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        else:
            mask = present[m].to(torch.bool)[:, None].expand(x.shape[0], x.shape[1])
        if valid is not None and valid.get(m) is not None:
            mask = mask & valid[m].to(mask.device)
        masks[m] = mask
    return masks
