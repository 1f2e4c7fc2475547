"""PredictEveryToken: the wrapped masker's visible set, every token predicted."""

import torch

from mmmae.masking.every_token import PredictEveryToken
from mmmae.masking.rng import MaskRNG
from mmmae.masking.tube import TubeMasking
from mmmae.types import Tokens


def test_keeps_the_wrapped_maskers_tokens_and_predicts_all():
    tokens = Tokens(torch.zeros(3, 2 * 4 * 4, 8), None, (2, 4, 4))
    plan = PredictEveryToken(TubeMasking(0.75))(tokens, {}, MaskRNG.seeded(0))
    wrapped = TubeMasking(0.75)(tokens, {}, MaskRNG.seeded(0))
    assert torch.equal(plan.keep, wrapped.keep)
    assert torch.equal(plan.predict, torch.arange(32).repeat(3, 1))
    assert plan.loss_weight is None
