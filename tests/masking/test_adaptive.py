"""AdaMAE's adaptive masking: exact counts, seeding, checks, and samples that follow the learned p."""

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmmae.masking.adaptive import AdaptiveMasking, sample_without_replacement
from mmmae.masking.rng import MaskRNG
from mmmae.model import Modality
from mmmae.tokenizers.video import TubeletTokenizer
from mmmae.types import Tokens

DIM = 8


def tokens(batch: int, num: int, seed: int = 0, dim: int = DIM) -> Tokens:
    embed = torch.randn(batch, num, dim, generator=torch.Generator().manual_seed(seed))
    return Tokens(embed=embed, target=None, grid=(num,))


def masker(ratio: float = 0.75, seed: int = 0) -> AdaptiveMasking:
    torch.manual_seed(seed)
    return AdaptiveMasking(dim=DIM, ratio=ratio, heads=2)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 4), st.integers(2, 40), st.floats(0.05, 0.95), st.integers(0, 1000))
def test_exact_counts_sorted_disjoint_complete_and_seeded(batch, num, ratio, seed):
    keep_count = int(num * (1 - ratio))
    if not 0 < keep_count < num:
        return
    sampler, toks = masker(ratio), tokens(batch, num)
    plan = sampler(toks, {}, MaskRNG.seeded(seed))
    assert plan.keep.shape == (batch, keep_count) and plan.predict.shape == (batch, num - keep_count)
    for keep, predict in zip(plan.keep, plan.predict):
        assert torch.equal(keep, keep.sort().values) and torch.equal(predict, predict.sort().values)
        assert torch.equal(torch.cat([keep, predict]).sort().values, torch.arange(num))
    assert torch.equal(plan.keep, sampler(toks, {}, MaskRNG.seeded(seed)).keep)
    assert plan.aux["log_prob"].shape == (batch, num)


def test_different_seeds_give_different_masks():
    sampler, toks = masker(0.9), tokens(2, 64)
    assert not torch.equal(sampler(toks, {}, MaskRNG.seeded(1)).keep, sampler(toks, {}, MaskRNG.seeded(2)).keep)


def test_log_prob_is_a_distribution_whose_gradient_reaches_the_tokens():
    toks = tokens(2, 10)
    toks.embed.requires_grad_(True)
    log_prob = masker()(toks, {}, MaskRNG.seeded(0)).aux["log_prob"]
    assert torch.allclose(log_prob.exp().sum(-1), torch.ones(2))
    log_prob[:, 0].sum().backward()
    assert toks.embed.grad.abs().sum() > 0


def test_one_visible_token_is_drawn_with_probability_p():
    """Inclusion frequencies of the single visible token over 4000 draws match p (chi-square, 7 dof)."""
    sampler = masker(ratio=0.875)  # 8 tokens, int(8 * 0.125) = 1 visible
    with torch.no_grad():
        sampler.head.weight.mul_(4.0)
    toks = tokens(1, 8)
    toks.embed = toks.embed.expand(4000, -1, -1)
    plan = sampler(toks, {}, MaskRNG.seeded(0))
    p = plan.aux["log_prob"][0].exp().detach()
    assert p.max() > 2 * p.min(), "the test needs a clearly non-uniform p"
    counts = torch.bincount(plan.keep[:, 0], minlength=8).float()
    chi_square = ((counts - 4000 * p) ** 2 / (4000 * p)).sum()
    assert chi_square < 29.9  # the 99.99 % quantile of chi-square with 7 degrees of freedom


def test_several_visible_tokens_follow_sequential_draws_without_replacement():
    """Gumbel-top-2 includes token i with the probability of two draws without replacement from p."""
    p = torch.tensor([0.5, 0.25, 0.15, 0.07, 0.03])
    expected = torch.zeros(5)
    for first, second in itertools.permutations(range(5), 2):
        chance = p[first] * p[second] / (1 - p[first])
        expected[first] += chance
        expected[second] += chance
    draws = 20000
    chosen, rest = sample_without_replacement(p.log().expand(draws, -1), 2, MaskRNG.seeded(0).rand(draws, 5))
    assert (chosen[:, 0] != chosen[:, 1]).all() and rest.shape == (draws, 3)
    frequency = torch.bincount(chosen.flatten(), minlength=5).float() / draws
    tolerance = 4 * (expected * (1 - expected) / draws).sqrt()
    assert ((frequency - expected).abs() < tolerance).all(), (frequency, expected)


def test_a_modality_registers_the_sampler_as_a_submodule():
    modality = Modality("video", TubeletTokenizer(dim=DIM, patch=4), masker())
    names = [name for name, _ in modality.named_parameters()]
    assert "masker.head.weight" in names and any(name.startswith("masker.block.") for name in names)


@pytest.mark.parametrize("ratio", [0.0, 1.0, 1.5])
def test_ratio_outside_open_interval_fails_at_construction(ratio):
    with pytest.raises(ValueError, match=rf"AdaptiveMasking\.ratio = {ratio}"):
        AdaptiveMasking(dim=DIM, ratio=ratio)


def test_ratio_that_leaves_nothing_visible_names_the_counts():
    with pytest.raises(ValueError, match=r"AdaptiveMasking\.ratio = 0\.95 masks 8 of 8"):
        AdaptiveMasking(dim=DIM, heads=2)(tokens(1, 8), {}, MaskRNG.seeded(0))


def test_width_and_heads_are_checked():
    with pytest.raises(ValueError, match=r"AdaptiveMasking\.heads = 3 does not divide AdaptiveMasking\.dim = 8"):
        AdaptiveMasking(dim=DIM, heads=3)
    with pytest.raises(ValueError, match=r"AdaptiveMasking\.dim = 8 but the tokens are 16 wide"):
        masker()(tokens(1, 8, dim=16), {}, MaskRNG.seeded(0))
