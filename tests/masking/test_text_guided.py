"""Text-guided masking: per-slice top-k by caption score, exact counts, tie-breaking, scorers, errors."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from mmmae.masking.rng import MaskRNG
from mmmae.masking.text_guided import CachedCaptionScores, PatchCaptionScorer, TextGuidedMasking, top_scores_per_slice
from mmmae.types import Tokens
from tests.float32_bound import rounding_bound


def tokens(batch: int, grid: tuple[int, int, int], dim: int = 4, seed: int = 0) -> Tokens:
    n = math.prod(grid)
    embed = torch.randn(batch, n, dim, generator=torch.Generator().manual_seed(seed))
    return Tokens(embed=embed, target=None, grid=grid)


def cached_plan(scores: torch.Tensor, grid, ratio: float, seed: int = 0):
    masker = TextGuidedMasking(ratio, scorer=CachedCaptionScores())
    return masker(tokens(scores.shape[0], grid), {"caption_sim": scores}, MaskRNG.seeded(seed))


@st.composite
def cases(draw):
    """A grid, a ratio that masks at least one and keeps at least one token per slice, and scores
    drawn from few levels so that ties are common."""
    grid = (draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    space = grid[1] * grid[2]
    if space < 2:
        grid = (grid[0], 2, grid[2])
        space = 2 * grid[2]
    masked = draw(st.integers(1, space - 1))
    ratio = (masked + 0.5) / space  # int(ratio * space) == masked
    batch = draw(st.integers(1, 3))
    levels = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**16))
    scores = torch.randint(levels, (batch, *grid), generator=torch.Generator().manual_seed(seed)).float()
    return grid, ratio, masked, scores, seed


@settings(max_examples=25, deadline=None)
@given(cases())
def test_masks_exactly_the_top_scoring_tokens_of_every_slice(case):
    grid, ratio, masked, scores, seed = case
    frames, space = grid[0], grid[1] * grid[2]
    plan = cached_plan(scores, grid, ratio, seed)
    assert plan.predict.shape == (scores.shape[0], frames * masked)
    assert plan.keep.shape == (scores.shape[0], frames * (space - masked))
    flat = scores.flatten(1)
    for b in range(scores.shape[0]):
        keep, predict = plan.keep[b], plan.predict[b]
        assert torch.equal(keep, keep.sort().values) and torch.equal(predict, predict.sort().values)
        assert torch.equal(torch.cat([keep, predict]).sort().values, torch.arange(frames * space))
        for t in range(frames):
            in_slice_p = predict[(predict // space) == t]
            in_slice_k = keep[(keep // space) == t]
            assert len(in_slice_p) == masked and len(in_slice_k) == space - masked
            assert flat[b, in_slice_p].min() >= flat[b, in_slice_k].max(), "a kept token outscores a masked one"
    assert torch.equal(plan.aux["caption_scores"], flat)


@settings(max_examples=25, deadline=None)
@given(cases())
def test_same_seed_same_plan(case):
    grid, ratio, _, scores, seed = case
    first, second = cached_plan(scores, grid, ratio, seed), cached_plan(scores, grid, ratio, seed)
    assert torch.equal(first.keep, second.keep) and torch.equal(first.predict, second.predict)


def test_distinct_scores_give_the_top_k_regardless_of_the_seed():
    scores = torch.randn(2, 2, 3, 3, generator=torch.Generator().manual_seed(1))
    plans = [cached_plan(scores, (2, 3, 3), 0.6, seed) for seed in range(3)]
    flat = scores.view(2, 2, 9)
    expected = (flat.topk(5, dim=-1).indices + torch.tensor([0, 9])[None, :, None]).flatten(1).sort().values
    for plan in plans:
        assert torch.equal(plan.predict, expected)


def test_ties_are_broken_at_random_by_the_rng():
    scores = torch.zeros(1, 1, 4, 4)  # e.g. a sample without a caption
    predicts = {tuple(cached_plan(scores, (1, 4, 4), 0.5, seed).predict[0].tolist()) for seed in range(6)}
    assert len(predicts) > 1


def test_tie_breaking_prefers_lower_noise():
    top, rest = top_scores_per_slice(torch.tensor([[1.0, 2.0, 1.0, 1.0]]), torch.tensor([[0.9, 0.5, 0.1, 0.3]]), 2)
    assert top.tolist() == [[1, 2]] and rest.tolist() == [[0, 3]]


def test_paper_count_at_ratio_0_6():
    plan = cached_plan(torch.rand(2, 8, 14, 14), (8, 14, 14), 0.6)
    assert plan.predict.shape == (2, 8 * 117) and plan.keep.shape == (2, 8 * 79)  # int(0.6 * 196) = 117


def test_flat_cached_scores_are_accepted():
    scores = torch.rand(2, 2, 3, 3)
    grid_shaped, flat = cached_plan(scores, (2, 3, 3), 0.6), cached_plan(scores.flatten(1), (2, 3, 3), 0.6)
    assert torch.equal(grid_shaped.predict, flat.predict)


@pytest.mark.parametrize("ratio", [0.0, 1.0, -0.2, 1.5])
def test_ratio_outside_open_interval_fails_at_construction(ratio):
    with pytest.raises(ValueError, match=rf"TextGuidedMasking\.ratio = {ratio}"):
        TextGuidedMasking(ratio, scorer=CachedCaptionScores())


def test_ratio_that_masks_nothing_in_a_slice_fails_at_the_first_call():
    with pytest.raises(ValueError, match=r"TextGuidedMasking\.ratio = 0\.2 masks 0 of 4 tokens of a time slice"):
        cached_plan(torch.rand(1, 2, 2, 2), (2, 2, 2), 0.2)


def test_a_grid_that_is_not_video_is_refused():
    masker = TextGuidedMasking(0.6, scorer=CachedCaptionScores())
    flat = Tokens(embed=torch.zeros(1, 8, 4), target=None, grid=(8,))
    with pytest.raises(ValueError, match=r"needs a \(T', H', W'\) video grid, got \(8,\)"):
        masker(flat, {"caption_sim": torch.rand(1, 8)}, MaskRNG.seeded(0))


def test_missing_cached_scores_name_the_key_and_binding():
    masker = TextGuidedMasking(0.6, scorer=CachedCaptionScores(key="clip_sim"))
    with pytest.raises(KeyError, match=r"CachedCaptionScores\.key = 'clip_sim'\) needs batch\['clip_sim'\].*"
                                        r"the batch has keys \['video'\]"):
        masker(tokens(1, (2, 2, 2)), {"video": 0}, MaskRNG.seeded(0))


def test_cached_scores_of_the_wrong_shape_are_refused():
    with pytest.raises(ValueError, match=r"has shape \(1, 2, 4, 4\), expected \(1, 2, 2, 2\) or \(1, 8\)"):
        cached_plan(torch.rand(1, 2, 4, 4), (2, 2, 2), 0.6)


class TableEncoder:
    """A stand-in text encoder: a fixed vector per caption."""

    def __init__(self, table: dict[str, list[float]]):
        self.table = table

    def __call__(self, captions):
        return torch.tensor([self.table[c] for c in captions])


def test_patch_caption_scores_equal_the_hand_computed_cosine():
    torch.manual_seed(0)
    head = nn.Linear(4, 3)
    scorer = PatchCaptionScorer(head, text_encoder=TableEncoder({"a": [1.0, 2.0, -1.0], "b": [0.0, 1.0, 3.0]}))
    toks = tokens(2, (2, 2, 2), dim=4, seed=3)
    scores = scorer(toks, {"caption": ["a", "b"]})
    weight, bias = head.weight.tolist(), head.bias.tolist()
    for b, caption in enumerate(["a", "b"]):
        text = scorer.text_encoder.table[caption]
        for n, x in enumerate(toks.embed[b].tolist()):
            patch = [sum(w * v for w, v in zip(row, x)) + c for row, c in zip(weight, bias)]
            norms = math.sqrt(sum(p * p for p in patch) * sum(t * t for t in text))
            cosine = sum(p * t for p, t in zip(patch, text)) / norms
            # the head (4 terms), the norms and the dot product (3 terms), against float64: a cosine of size <= 1
            assert scores[b, n].item() == pytest.approx(cosine, abs=rounding_bound(torch.ones(1), 3, 4))
    assert not scores.requires_grad


def test_patch_caption_scorer_with_the_sentence_encoder_masks_the_most_caption_like_patches():
    from mmmae.nn.sentence_encoder import FrozenSentenceEncoder

    text = FrozenSentenceEncoder()
    captions = ["a seven moves quickly up", "a two moves slowly to the left"]
    target = text(captions)  # (2, 384)
    head = nn.Linear(384, 384, bias=False)
    nn.init.eye_(head.weight)
    embed = torch.randn(2, 8, 384, generator=torch.Generator().manual_seed(0))
    embed[0, 1] = target[0] * 5  # in slice 0 of sample 0, patch 1 is the caption itself
    embed[1, 6] = target[1] * 5  # in slice 1 of sample 1, patch 2
    toks = Tokens(embed=embed, target=None, grid=(2, 2, 2))
    masker = TextGuidedMasking(0.25, scorer=PatchCaptionScorer(head, text_encoder=text))
    plan = masker(toks, {"caption": captions}, MaskRNG.seeded(0))
    # the identity head's, the norms' and the dot product's sums of 384 terms
    assert plan.aux["caption_scores"][0, 1].item() == pytest.approx(1.0, abs=rounding_bound(torch.ones(1), 3, 384))
    assert 1 in plan.predict[0].tolist() and 6 in plan.predict[1].tolist()


def test_a_sample_without_a_caption_scores_zero_and_is_masked_at_random():
    scorer = PatchCaptionScorer(nn.Linear(4, 2), text_encoder=TableEncoder({"a": [1.0, 0.0], "": [0.0, 1.0]}))
    scores = scorer(tokens(2, (1, 2, 2)), {"caption": ["a", ""]})
    assert torch.equal(scores[1], torch.zeros(4)) and scores[0].abs().sum() > 0


def test_missing_caption_names_the_key_and_binding():
    masker = TextGuidedMasking(0.6, scorer=PatchCaptionScorer(nn.Linear(4, 2), text_encoder=TableEncoder({})))
    with pytest.raises(KeyError, match=r"TextGuidedMasking \(scorer PatchCaptionScorer\.caption_key = 'caption'\) "
                                        r"needs batch\['caption'\].*the batch has keys \['video', 'video_present'\]"):
        masker(tokens(1, (2, 2, 2)), {"video": 0, "video_present": 0}, MaskRNG.seeded(0))


def test_projection_width_must_match_the_text_embedding():
    scorer = PatchCaptionScorer(nn.Linear(4, 3), text_encoder=TableEncoder({"a": [1.0, 0.0]}))
    with pytest.raises(ValueError, match=r"3-d patch embeddings but the text encoder 2-d"):
        scorer(tokens(1, (1, 2, 2)), {"caption": ["a"]})
