"""Random masking over a padded sequence's valid tokens."""

import pytest
import torch

from mmmae.masking.padded import PaddedRandomMasking, keep_lowest_scores
from mmmae.masking.rng import MaskRNG
from mmmae.types import Tokens


def padded_tokens(lengths: list[int], total: int) -> Tokens:
    valid = torch.arange(total)[None] < torch.tensor(lengths)[:, None]
    return Tokens(embed=torch.zeros(len(lengths), total, 4), target=None, grid=(total,), valid=valid)


def test_keeps_its_share_of_valid_tokens_at_random_and_weights_only_valid_predictions():
    tokens = padded_tokens([16, 10, 7, 2], 16)
    masker = PaddedRandomMasking(ratio=0.75)
    plan = masker(tokens, {}, MaskRNG.seeded(0))
    kept = tokens.valid.gather(1, plan.keep).sum(dim=1)
    assert kept.tolist() == [4, 2, 1, 1]
    assert torch.equal(plan.loss_weight.bool(), tokens.valid.gather(1, plan.predict))
    other = masker(tokens, {}, MaskRNG.seeded(1))
    assert not torch.equal(plan.keep, other.keep)
    assert torch.equal(plan.keep, masker(tokens, {}, MaskRNG.seeded(0)).keep)


def test_scores_choose_and_a_full_sample_sets_the_count():
    # Sample 1 (no padding) keeps 2 of 4; sample 0 (2 valid) keeps 1 and fills keep with padding.
    score = torch.tensor([[0.9, 0.1, 0.0, 0.0], [0.4, 0.3, 0.2, 0.1]])
    valid = torch.tensor([[True, True, False, False], [True, True, True, True]])
    plan = keep_lowest_scores("test", 0.5, score, valid)
    assert plan.keep.tolist() == [[1, 2], [2, 3]] and plan.predict.tolist() == [[0, 3], [0, 1]]
    assert plan.loss_weight.tolist() == [[1.0, 0.0], [1.0, 1.0]]


@pytest.mark.parametrize("ratio", [0.1, 0.25, 0.5, 0.75, 0.9])
def test_every_length_keeps_its_count_and_fills_with_its_own_padding(ratio):
    lengths = torch.arange(1, 10)
    valid = torch.arange(9)[None] < lengths[:, None]
    plan = keep_lowest_scores("test", ratio, torch.rand(9, 9), valid)
    expected = [max(1, min(int(n * (1 - ratio)), max(n - 1, 1))) for n in lengths.tolist()]
    assert valid.gather(1, plan.keep).sum(dim=1).tolist() == expected
    assert torch.equal(plan.loss_weight.bool(), valid.gather(1, plan.predict))
    assert plan.loss_weight.sum(dim=1).tolist() == [n - k for n, k in zip(lengths.tolist(), expected)]
    for keep, predict in zip(plan.keep, plan.predict):
        assert torch.equal(torch.cat([keep, predict]).sort().values, torch.arange(9))
