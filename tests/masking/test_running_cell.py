"""VideoMAE V2 dual masking: running-cell decoder queries around an encoder masker."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmmae.masking.random import RandomMasking
from mmmae.masking.rng import MaskRNG
from mmmae.masking.running_cell import RunningCellMasking, running_cell_patterns
from mmmae.masking.tube import TubeMasking
from mmmae.types import Tokens


def tokens(grid: tuple[int, int, int], batch: int = 3) -> Tokens:
    return Tokens(embed=torch.zeros(batch, grid[0] * grid[1] * grid[2], 4), target=None, grid=grid)


def test_first_pattern_matches_the_official_queue():
    # VideoMAE V2, ratio 0.5 on 2x2 cells: queue [1, 1, 0, 0] (1 = dropped), frame t uses
    # queue[(arange(4) + t + 1) % 4] -> kept cells [[0,1],[1,0]], [[1,1],[0,0]], [[1,0],[0,1]], [[0,0],[1,1]]
    patterns = running_cell_patterns(4, 2, 2, (2, 2), dropped=2)
    kept = patterns[0].int().tolist()
    assert kept == [[0, 1, 1, 0], [1, 1, 0, 0], [1, 0, 0, 1], [0, 0, 1, 1]]


def test_videomae_v2_counts_on_the_reference_geometry():
    plan = RunningCellMasking(TubeMasking(0.9), 0.5)(tokens((8, 14, 14)), {}, MaskRNG.seeded(0))
    assert plan.keep.shape == (3, 8 * 20)
    assert plan.predict.shape == (3, 8 * 98)  # 784 decoder queries per clip
    # the loss covers encoder-masked, decoder-kept tokens only: 784 - (those the encoder saw)
    seen = torch.stack([torch.isin(predict, keep) for predict, keep in zip(plan.predict, plan.keep)])
    assert torch.equal(plan.loss_weight, (~seen).float())
    assert 0 < seen.sum() < seen.numel()


@settings(max_examples=25, deadline=None)
@given(frames=st.integers(1, 9), cells=st.tuples(st.integers(1, 4), st.integers(1, 4)),
       cell=st.sampled_from([(2, 2), (1, 2), (2, 3)]), ratio=st.floats(0.2, 0.8), seed=st.integers(0, 2**16))
def test_running_cell_properties(frames, cells, cell, ratio, seed):
    size = cell[0] * cell[1]
    dropped = int(ratio * size)
    if not 0 < dropped < size:
        with pytest.raises(ValueError, match="RunningCellMasking.ratio"):
            RunningCellMasking(RandomMasking(0.5), ratio, cell)
        return
    grid = (frames, cells[0] * cell[0], cells[1] * cell[1])
    masker = RunningCellMasking(RandomMasking(0.5), ratio, cell)
    plan = masker(tokens(grid), {}, MaskRNG.seeded(seed))
    space = grid[1] * grid[2]
    assert plan.predict.shape == (3, frames * space * (size - dropped) // size)
    for row in plan.predict:
        assert torch.equal(row, row.sort().values) and len(row.unique()) == len(row)
        decoder_kept = torch.zeros(frames * space, dtype=torch.bool)
        decoder_kept[row] = True
        per_cell = decoder_kept.view(frames, cells[0], cell[0], cells[1], cell[1]).sum(dim=(2, 4))
        assert (per_cell == size - dropped).all(), "every cell keeps the same count in every frame"
        by_frame = decoder_kept.view(frames, space)
        if frames > size:  # the pattern runs with period = cell size, and moves every frame
            assert torch.equal(by_frame[size], by_frame[0])
            assert not torch.equal(by_frame[1], by_frame[0])
    again = masker(tokens(grid), {}, MaskRNG.seeded(seed))
    assert torch.equal(again.predict, plan.predict) and torch.equal(again.keep, plan.keep)


def test_each_sample_draws_one_of_the_patterns():
    masker = RunningCellMasking(TubeMasking(0.75), 0.5)
    plan = masker(tokens((4, 4, 4), batch=64), {}, MaskRNG.seeded(3))
    assert len({tuple(row.tolist()) for row in plan.predict}) == 4


def test_cell_must_tile_the_grid():
    with pytest.raises(ValueError, match=r"cell = \(2, 2\) does not tile the 3x4"):
        RunningCellMasking(RandomMasking(0.5))(tokens((2, 3, 4)), {}, MaskRNG.seeded(0))
