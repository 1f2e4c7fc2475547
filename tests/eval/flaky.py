"""An evaluation set with unreadable rows, as MediaDataset(train=False) has them: None for an
unreadable row; its `collate` drops the Nones and counts them in `left_out`."""

import torch
from torch.utils.data import Dataset, default_collate


class FlakyDataset(Dataset):
    """`samples`, except that the rows in `unreadable` cannot be read (None)."""

    def __init__(self, samples: list, unreadable: set[int]):
        self.samples, self.unreadable = samples, set(unreadable)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        return None if index in self.unreadable else self.samples[index]

    def readable(self) -> list:
        """The samples that can be read, in order: what an evaluation must see, each once."""
        return [s for i, s in enumerate(self.samples) if i not in self.unreadable]

    @staticmethod
    def collate(samples: list) -> dict:
        """default_collate of the readable samples (a list of clips flattened), plus left_out () int64."""
        kept = [clip for s in samples if s is not None for clip in (s if isinstance(s, list) else [s])]
        left_out = torch.tensor(sum(s is None for s in samples))
        return {**default_collate(kept), "left_out": left_out} if kept else {"left_out": left_out}
