import pytest
import torch

from mmmae.masking.given import GivenMasking
from mmmae.masking.rng import MaskRNG
from mmmae.types import Tokens


def _tokens(batch: int, num: int) -> Tokens:
    return Tokens(embed=torch.zeros(batch, num, 4), target=torch.zeros(batch, num, 2), grid=(num,))


def test_keeps_the_false_tokens_and_predicts_the_true_ones_in_order():
    hidden = torch.tensor([[True, False, True, False, False], [False, True, True, False, False]])
    plan = GivenMasking()(_tokens(2, 5), {"mask": hidden}, MaskRNG(torch.Generator()))
    assert plan.keep.tolist() == [[1, 3, 4], [0, 3, 4]]
    assert plan.predict.tolist() == [[0, 2], [1, 2]]


def test_a_mask_of_the_wrong_shape_or_uneven_counts_is_refused():
    masker = GivenMasking(key="video_mask")
    with pytest.raises(KeyError, match="batch\\['video_mask'\\], which the batch lacks"):
        masker(_tokens(2, 4), {"mask": torch.zeros(2, 4, dtype=torch.bool)}, MaskRNG(torch.Generator()))
    with pytest.raises(ValueError, match=r"shape \(2, 3\), expected \(batch, tokens\) = \(2, 4\)"):
        masker(_tokens(2, 4), {"video_mask": torch.zeros(2, 3, dtype=torch.bool)}, MaskRNG(torch.Generator()))
    uneven = torch.tensor([[True, False, False, False], [True, True, False, False]])
    with pytest.raises(ValueError, match=r"hides \[1, 2\] tokens"):
        masker(_tokens(2, 4), {"video_mask": uneven}, MaskRNG(torch.Generator()))
