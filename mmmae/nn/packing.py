"""Packed token layouts: several modalities and samples back to back in one (T, D) tensor.

Tokens are laid out sample-major: sample 0's modalities in order, then sample 1's, ... and a
modality a sample lacks takes no room. Attention runs within sequences; two groupings of the
same layout are built: ``separate`` (one sequence per sample and modality) and ``joint`` (one
sequence per sample, all its modalities together).
"""

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

    parts: {modality: (B, L_m, D)}; present: {modality: (B,) bool}. `index[m]` holds the
    packed positions (B_m, L_m) of the B_m samples that have modality m.
    """

    def __init__(self, lengths: dict[str, int], present: dict[str, torch.Tensor], device: torch.device):
        self.names = list(lengths)
        self.lengths = lengths
        self.present = {m: present[m].to("cpu", torch.bool) for m in self.names}
        counts = torch.stack([self.present[m].long() * lengths[m] for m in self.names], dim=1)  # (B, M)
        flat = counts.flatten()
        starts = (torch.cumsum(flat, 0) - flat).view_as(counts)
        self.index = {}
        for j, m in enumerate(self.names):
            rows = self.present[m].nonzero().flatten()
            self.index[m] = (starts[rows, j, None] + torch.arange(lengths[m])).to(device)
        self.rows = {m: self.present[m].nonzero().flatten().to(device) for m in self.names}
        self.separate = Packing(flat.tolist(), device)
        self.joint = Packing(counts.sum(dim=1).tolist(), device)

    def pack(self, parts: dict[str, torch.Tensor]) -> torch.Tensor:
        """{m: (B, L_m, D)} -> (T, D) in sample-major order, absent (sample, modality) pairs dropped."""
        first = parts[self.names[0]]
        out = first.new_zeros(self.separate.total, first.shape[-1])
        for m in self.names:
            out = out.index_put((self.index[m].flatten(),), parts[m][self.rows[m]].flatten(0, 1))
        return out

    def unpack(self, x: torch.Tensor, batch: int) -> dict[str, torch.Tensor]:
        """(T, D) -> {m: (B, L_m, D)}, zeros for samples that lack m."""
        out = {}
        for m in self.names:
            full = x.new_zeros(batch, self.lengths[m], x.shape[-1])
            out[m] = full.index_put((self.rows[m],), x[self.index[m]])
        return out
