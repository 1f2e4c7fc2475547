"""Evaluation batches: the dataset's collate, unreadable samples left out and counted, positions kept."""

import torch

from mmmae.eval.loader import EvalLoader
from tests.eval.flaky import FlakyDataset


def numbered(n: int) -> list[dict]:
    return [{"x": torch.tensor(float(i))} for i in range(n)]


def test_unreadable_samples_are_left_out_counted_and_never_replaced():
    loader = EvalLoader(FlakyDataset(numbered(10), unreadable={1, 4, 5, 6, 7}), batch_size=4)
    for _ in range(2):  # each pass counts afresh
        seen = [(positions.tolist(), batch["x"].tolist()) for positions, batch in loader]
        assert seen == [([0, 2, 3], [0.0, 2.0, 3.0]), ([8, 9], [8.0, 9.0])]  # the all-unreadable batch skipped
        assert loader.left_out == 5


def test_a_dataset_without_collate_is_collated_by_default_collate():
    loader = EvalLoader(numbered(5), batch_size=2)
    assert [(p.tolist(), b["x"].tolist()) for p, b in loader] == [([0, 1], [0.0, 1.0]), ([2, 3], [2.0, 3.0]),
                                                                  ([4], [4.0])]
    assert loader.left_out == 0 and len(loader) == 3


def test_repeated_clips_give_their_sample_position_once_per_clip():
    clips = [[{"x": torch.tensor(float(i))}, {"x": torch.tensor(float(i))}] for i in range(4)]
    positions, batch = next(iter(EvalLoader(FlakyDataset(clips, unreadable={1}), batch_size=3)))
    assert positions.tolist() == [0, 0, 2, 2] and batch["x"].tolist() == [0.0, 0.0, 2.0, 2.0]
