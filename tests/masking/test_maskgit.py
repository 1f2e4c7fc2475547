"""MaskGIT's masking schedule: ratio cos(π/2 · u), one draw per batch, random tokens."""

import math

import pytest
import torch

from mmmae.masking.maskgit import MaskGITMasking, maskgit_count
from mmmae.masking.rng import MaskRNG
from mmmae.types import Tokens


def tokens(batch: int = 4, total: int = 32) -> Tokens:
    return Tokens(torch.zeros(batch, total, 2), None, (total,))


def test_count_follows_the_cosine_and_keeps_one_token_and_masks_one():
    assert maskgit_count(0.0, 32) == 31  # cos 0 = 1: all but one
    assert maskgit_count(0.5, 32) == math.ceil(math.cos(math.pi / 4) * 32)
    assert maskgit_count(0.999999, 32) == 1


def test_keep_and_predict_split_every_sample_with_one_count_per_batch():
    for seed in range(20):
        plan = MaskGITMasking()(tokens(), {}, MaskRNG.seeded(seed))
        both = torch.cat([plan.keep, plan.predict], dim=1).sort(dim=1).values
        assert torch.equal(both, torch.arange(32).repeat(4, 1))
        assert 1 <= plan.predict.shape[1] <= 31
        assert torch.equal(plan.keep, plan.keep.sort(dim=1).values)


def test_the_masked_share_averages_two_over_pi():
    draws = [MaskGITMasking()(tokens(1, 100), {}, MaskRNG.seeded(seed)).predict.shape[1] / 100
             for seed in range(2000)]
    # E[cos(π u / 2)] = 2 / π; its std is sqrt(1/2 - 4/π²) ≈ 0.31, so the mean of 2000 draws lies within
    # 5 standard errors (0.034) of it, plus the ceil's rounding (at most 1/100)
    assert abs(sum(draws) / len(draws) - 2 / math.pi) < 5 * math.sqrt(0.5 - 4 / math.pi**2) / math.sqrt(2000) + 0.01


def test_two_processes_mask_their_halves_as_one_process_masks_the_whole_batch():
    whole = MaskGITMasking()(tokens(4), {}, MaskRNG.seeded(3))
    halves = [MaskGITMasking()(tokens(2), {}, MaskRNG.seeded(3, rank=r, world_size=2)) for r in range(2)]
    assert torch.equal(torch.cat([h.keep for h in halves]), whole.keep)
    assert torch.equal(torch.cat([h.predict for h in halves]), whole.predict)


def test_a_single_token_is_refused():
    with pytest.raises(ValueError, match="at least 2 tokens"):
        MaskGITMasking()(tokens(1, 1), {}, MaskRNG.seeded(0))
