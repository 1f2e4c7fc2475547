"""Importance masking (LV-MAE): keeps the change points, masks repeats, honours padding, deterministic."""

import pytest
import torch
import torch.nn.functional as F

from mmmae.masking.importance import ImportanceMasking, predecessor_similarity
from mmmae.masking.rng import MaskRNG
from mmmae.types import Tokens


def segment_tokens(segments: torch.Tensor) -> Tokens:
    """Tokens as SegmentEmbeddingTokenizer makes them (embed unused by the masker)."""
    return Tokens(embed=torch.zeros(*segments.shape[:2], 4), target=segments, grid=(segments.shape[1],),
                  valid=segments.ne(0).any(dim=-1))


def events(labels: list[int], length: int, dim: int = 16) -> torch.Tensor:
    """One sequence (1, length, dim): segment k is the unit vector of event labels[k] (orthogonal
    events), zero rows after len(labels)."""
    rows = F.one_hot(torch.tensor(labels), dim).float()
    return F.pad(rows, (0, 0, 0, length - len(labels)))[None]


def test_similarity_to_the_predecessor():
    segments = events([0, 0, 1, 1, 1, 2], 6)
    assert predecessor_similarity(segments)[0].tolist() == [0, 1, 0, 1, 1, 0]


def test_keeps_the_change_points_and_masks_the_repeats():
    # Events a a b b b c: c = 0 1 0 1 1 0; the change points are segments 0, 2 and 5.
    segments = events([0, 0, 1, 1, 1, 2], 6)
    plan = ImportanceMasking(ratio=0.5)(segment_tokens(segments), {}, MaskRNG.seeded(0))
    assert plan.keep.tolist() == [[0, 2, 5]] and plan.predict.tolist() == [[1, 3, 4]]
    assert plan.loss_weight.tolist() == [[1.0, 1.0, 1.0]]


def test_padding_is_never_kept_for_itself_nor_predicted_with_weight():
    # Sample 0: 8 valid, change points 0, 3, 6, 7; sample 1: 4 valid (0 1 1 2: change points 0, 1, 3), 4 padding.
    segments = torch.cat([events([0, 0, 0, 1, 1, 1, 2, 3], 8), events([0, 1, 1, 2], 8)])
    plan = ImportanceMasking(ratio=0.5)(segment_tokens(segments), {}, MaskRNG.seeded(0))
    valid = segments.ne(0).any(dim=-1)
    assert plan.keep.shape == (2, 4) and plan.predict.shape == (2, 4)
    assert plan.keep[0].tolist() == [0, 3, 6, 7]
    kept_valid = [k for k in plan.keep[1].tolist() if valid[1, k]]
    assert kept_valid == [0, 1]  # int(4 * 0.5) = 2 kept: the two lowest c (0 and 1; 3 ties with 1, later)
    predicted_valid = sorted(set(range(4)) - set(kept_valid))
    weights = dict(zip(plan.predict[1].tolist(), plan.loss_weight[1].tolist()))
    assert [p for p, w in weights.items() if w > 0] == predicted_valid
    assert all(w == 0 for p, w in weights.items() if not valid[1, p])
    for keep, predict in zip(plan.keep, plan.predict):  # disjoint, sorted, complete
        assert torch.equal(torch.cat([keep, predict]).sort().values, torch.arange(8))
        assert torch.equal(keep, keep.sort().values) and torch.equal(predict, predict.sort().values)


def test_each_sample_keeps_its_share_of_its_valid_segments():
    generator = torch.Generator().manual_seed(0)
    lengths = [12, 9, 5, 3, 2, 1]
    segments = torch.stack([F.pad(F.normalize(torch.randn(n, 8, generator=generator), dim=-1), (0, 0, 0, 12 - n))
                            for n in lengths])
    plan = ImportanceMasking(ratio=0.5)(segment_tokens(segments), {}, MaskRNG.seeded(0))
    valid = segments.ne(0).any(dim=-1)
    kept = valid.gather(1, plan.keep).sum(dim=1)
    assert kept.tolist() == [6, 4, 2, 1, 1, 1]  # int(V / 2), at least 1, at most V - 1 for V >= 2
    assert (plan.loss_weight.sum(dim=1) == torch.tensor(lengths) - kept).all()


def test_deterministic_and_checked():
    segments = F.normalize(torch.randn(3, 10, 8), dim=-1)
    masker = ImportanceMasking(ratio=0.5)
    a, b = (masker(segment_tokens(segments), {}, MaskRNG.seeded(seed)) for seed in (0, 9))
    assert torch.equal(a.keep, b.keep) and torch.equal(a.predict, b.predict)
    with pytest.raises(ValueError, match="ImportanceMasking.ratio = 1.0"):
        ImportanceMasking(ratio=1.0)
    with pytest.raises(ValueError, match="Tokens.target"):
        masker(Tokens(embed=torch.zeros(1, 4, 2), target=None, grid=(4,)), {}, MaskRNG.seeded(0))
    with pytest.raises(ValueError, match=r"samples \[1\] have no valid token"):
        masker(segment_tokens(torch.cat([segments[:1], torch.zeros(1, 10, 8)])), {}, MaskRNG.seeded(0))
