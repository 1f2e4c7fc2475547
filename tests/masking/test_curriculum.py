"""Masking-ratio curriculum: the ratio follows the training step, with any masker."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmmae.masking.curriculum import RatioCurriculum
from mmmae.masking.random import RandomMasking
from mmmae.masking.rng import MaskRNG
from mmmae.masking.tube import TubeMasking
from mmmae.types import Tokens

TOKENS = Tokens(embed=torch.zeros(2, 8 * 14 * 14, 4), target=None, grid=(8, 14, 14))


def visible_at(curriculum: RatioCurriculum, step: int) -> int:
    return curriculum(TOKENS, {}, MaskRNG.seeded(0, step=step)).keep.shape[1]


def test_visible_count_follows_the_schedule_then_holds():
    curriculum = RatioCurriculum(TubeMasking, start=0.5, end=0.9, steps=100)
    assert visible_at(curriculum, 0) == 8 * (196 - 98)
    assert visible_at(curriculum, 50) == 8 * (196 - int(0.7 * 196))
    assert visible_at(curriculum, 100) == visible_at(curriculum, 1000) == 8 * 20


@settings(max_examples=30, deadline=None)
@given(start=st.floats(0.05, 0.95), end=st.floats(0.05, 0.95), steps=st.integers(1, 500),
       shape=st.sampled_from(["linear", "cosine"]), step=st.integers(0, 600))
def test_ratio_is_monotone_between_its_end_points(start, end, steps, shape, step):
    curriculum = RatioCurriculum(RandomMasking, start=start, end=end, steps=steps, shape=shape)
    low, high = min(start, end), max(start, end)
    assert low - 1e-9 <= curriculum.ratio_at(step) <= high + 1e-9
    direction = (curriculum.ratio_at(step + 1) - curriculum.ratio_at(step)) * (end - start)
    assert direction >= -1e-12
    assert curriculum.ratio_at(0) == pytest.approx(start) and curriculum.ratio_at(steps) == pytest.approx(end)


def test_cosine_moves_slowly_at_the_ends():
    curriculum = RatioCurriculum(RandomMasking, start=0.5, end=0.9, steps=100, shape="cosine")
    assert curriculum.ratio_at(5) - 0.5 < 0.4 * 5 / 100
    assert curriculum.ratio_at(50) == pytest.approx(0.7)


@pytest.mark.parametrize("kwargs, message", [
    ({"start": 0.0, "end": 0.9, "steps": 10}, "RatioCurriculum.start = 0.0"),
    ({"start": 0.5, "end": 1.0, "steps": 10}, "RatioCurriculum.end = 1.0"),
    ({"start": 0.5, "end": 0.9, "steps": 0}, "RatioCurriculum.steps"),
    ({"start": 0.5, "end": 0.9, "steps": 10, "shape": "exp"}, "RatioCurriculum.shape"),
])
def test_bad_bindings_fail_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RatioCurriculum(TubeMasking, **kwargs)
