"""NoMasking: every token kept, nothing predicted, no randomness drawn."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmmae.masking.none import NoMasking
from mmmae.masking.rng import MaskRNG
from mmmae.types import Tokens, gather_tokens


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(1, 4), grid=st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 4)))
def test_keeps_every_token_in_order_and_predicts_none(batch, grid):
    n = grid[0] * grid[1] * grid[2]
    tokens = Tokens(embed=torch.randn(batch, n, 4), target=None, grid=grid)
    rng = MaskRNG.seeded(3)
    plan = NoMasking()(tokens, {}, rng)
    assert plan.keep.dtype == plan.predict.dtype == torch.int64
    assert torch.equal(plan.keep, torch.arange(n).expand(batch, n))
    assert plan.predict.shape == (batch, 0) and plan.loss_weight is None
    assert torch.equal(gather_tokens(tokens.embed, plan.keep), tokens.embed)
    assert torch.equal(rng.rand(1, 5), MaskRNG.seeded(3).rand(1, 5)), "NoMasking must not draw from the rng"
