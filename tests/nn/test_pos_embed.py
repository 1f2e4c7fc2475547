"""Sin-cos tables: VideoMAE's joint table by hand, the separable table's structure."""

import math

import pytest
import torch

from mmmae.nn.pos_embed import sincos_pos_embed
from tests.float32_bound import rounding_bound


def test_joint_matches_videomae_formula():
    table = sincos_pos_embed((2, 2, 3), 8, "joint")
    pos, j = 7, 5  # odd channel: cos
    assert table.shape == (12, 8)
    assert math.isclose(table[pos, j].item(), math.cos(pos / 10000 ** (2 * (j // 2) / 8)), rel_tol=1e-6)
    assert math.isclose(table[pos, 4].item(), math.sin(pos / 10000 ** (4 / 8)), rel_tol=1e-6)


def test_separable_is_space_plus_time():
    table = sincos_pos_embed((3, 2, 2), 16, "separable").view(3, 4, 16)
    # built in float64 and cast: each of the 4 entries compared is within eps/2 of |table| of its exact value
    bound = rounding_bound(table, 2, 1)
    # the difference between two spatial positions is the same in every frame
    assert torch.allclose(table[0, 1] - table[0, 2], table[2, 1] - table[2, 2], atol=bound, rtol=0)
    # and the difference between two frames is the same at every spatial position
    assert torch.allclose(table[1, 0] - table[0, 0], table[1, 3] - table[0, 3], atol=bound, rtol=0)
    assert len({tuple(row.tolist()) for row in table.view(12, 16)}) == 12, "every token is distinct"


def test_bad_variant_and_width():
    with pytest.raises(ValueError, match="variant"):
        sincos_pos_embed((2, 2, 2), 8, "learned")
    with pytest.raises(ValueError, match="divisible by 4"):
        sincos_pos_embed((2, 2, 2), 6, "separable")
