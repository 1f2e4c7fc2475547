"""Span masking: exact counts, valid tokens first, contiguous spans, seeding."""

import pytest
import torch

from mmmae.masking.rng import MaskRNG
from mmmae.masking.span import SpanMasking
from mmmae.types import Tokens


def tokens(lengths: list[int], total: int = 64) -> Tokens:
    """A batch whose sample i has lengths[i] valid tokens followed by padding."""
    valid = torch.arange(total)[None] < torch.tensor(lengths)[:, None]
    return Tokens(embed=torch.zeros(len(lengths), total, 4), target=None, grid=(total,), valid=valid)


def plan_for(lengths, seed=0, total=64, **kwargs):
    return SpanMasking(**kwargs)(tokens(lengths, total), {}, MaskRNG.seeded(seed))


def runs(ids: torch.Tensor) -> list[int]:
    """Lengths of the runs of consecutive integers in sorted ids."""
    breaks = (ids.diff() != 1).nonzero().flatten().tolist()
    edges = [0] + [b + 1 for b in breaks] + [len(ids)]
    return [b - a for a, b in zip(edges, edges[1:])]


def test_exact_counts_sorted_disjoint_complete():
    plan = plan_for([64, 40, 20, 3])
    assert plan.predict.shape == (4, 16) and plan.keep.shape == (4, 48)
    for keep, predict in zip(plan.keep, plan.predict):
        assert torch.equal(keep, keep.sort().values) and torch.equal(predict, predict.sort().values)
        assert torch.equal(torch.cat([keep, predict]).sort().values, torch.arange(64))


def test_each_sample_predicts_the_ratio_of_its_own_valid_tokens():
    lengths = torch.tensor([64, 40, 20, 16, 5, 2, 1, 0])
    plan = plan_for(lengths.tolist())  # ratio 0.25 of 64 positions: 16 predicted per sample
    is_valid = plan.predict < lengths[:, None]
    assert torch.equal(is_valid.sum(1), torch.tensor([16, 10, 5, 4, 1, 1, 0, 0]))  # round(0.25 V), 1 <= . < V
    assert torch.equal(plan.loss_weight, is_valid.float())  # the filling padding carries no loss


def test_a_short_caption_is_not_hidden_whole():
    plan = plan_for([22, 44], total=44, ratio=0.5)  # the quickstart: 22 of 44 positions predicted
    assert int((plan.predict[0] < 22).sum()) == 11 and int((plan.keep[0] < 22).sum()) == 11
    assert int(plan.loss_weight[1].sum()) == 22


def test_spans_are_contiguous_with_the_requested_mean():
    lengths = [run for seed in range(20) for ids in plan_for([64] * 8, seed=seed).predict for run in runs(ids)]
    mean = sum(lengths) / len(lengths)
    assert 2.5 < mean < 4.5
    single = [run for ids in plan_for([64] * 8, mean_span=1.0).predict for run in runs(ids)]
    assert sum(single) / len(single) < 2.0  # mean_span 1: scattered tokens


def test_no_valid_mask_means_all_valid():
    masker = SpanMasking(0.5)
    plan = masker(Tokens(torch.zeros(2, 10, 4), None, (10,)), {}, MaskRNG.seeded(0))
    assert plan.predict.shape == (2, 5) and (plan.loss_weight == 1).all()


def test_deterministic_given_seed():
    first, again, other = plan_for([64, 30], seed=3), plan_for([64, 30], seed=3), plan_for([64, 30], seed=4)
    assert torch.equal(first.predict, again.predict) and torch.equal(first.keep, again.keep)
    assert not torch.equal(first.predict, other.predict)


def test_sharded_batch_gets_the_same_masks():
    whole = SpanMasking()(tokens([64, 30, 10, 50]), {}, MaskRNG.seeded(7))
    shards = [SpanMasking()(tokens([64, 30, 10, 50][2 * r : 2 * r + 2]), {}, MaskRNG.seeded(7, rank=r, world_size=2))
              for r in range(2)]
    assert torch.equal(whole.predict, torch.cat([s.predict for s in shards]))


@pytest.mark.parametrize("kwargs", [{"ratio": 0.0}, {"ratio": 1.0}, {"mean_span": 0.5}])
def test_bad_settings_fail_at_construction(kwargs):
    with pytest.raises(ValueError, match="SpanMasking"):
        SpanMasking(**kwargs)


def test_too_short_sequence_names_the_ratio():
    with pytest.raises(ValueError, match="SpanMasking.ratio"):
        plan_for([2], total=2, ratio=0.9)
