"""Reconstruction never takes padding (Tokens.valid False) as a target, whatever the masker's weights."""

import pytest
import torch

from mmmae.objectives.reconstruction import Reconstruction
from mmmae.types import MaskPlan, ModalityOutput, Tokens


@pytest.mark.parametrize("loss_weight", [None, torch.tensor([[1.0, 1.0], [2.0, 1.0]])])
@pytest.mark.parametrize("loss", ["mse", "cosine"])
def test_padded_tokens_are_left_out(loss_weight, loss):
    target = torch.randn(2, 4, 3)
    valid = torch.tensor([[True, True, True, False], [True, True, True, True]])
    plan = MaskPlan(keep=torch.tensor([[0, 1], [0, 2]]), predict=torch.tensor([[2, 3], [1, 3]]),
                    loss_weight=loss_weight)
    prediction = torch.randn(2, 2, 3)
    out = ModalityOutput(Tokens(torch.zeros(2, 4, 1), target, (4,), valid), plan, torch.zeros(2, 2, 1), prediction,
                         torch.tensor([True, True]))
    padded, _ = Reconstruction("segments", loss=loss)({"segments": out}, {})
    prediction_at_pad = prediction.clone()
    prediction_at_pad[0, 1] = 1e3  # the padded token's prediction does not count
    moved, _ = Reconstruction("segments", loss=loss)({"segments": ModalityOutput(
        out.tokens, plan, out.encoded, prediction_at_pad, out.present)}, {})
    assert torch.equal(padded, moved)
    weight = torch.ones(2, 2) if loss_weight is None else loss_weight.clone()
    weight[0, 1] = 0
    unpadded = ModalityOutput(Tokens(torch.zeros(2, 4, 1), target, (4,)), MaskPlan(plan.keep, plan.predict, weight),
                              out.encoded, prediction, out.present)
    assert torch.equal(padded, Reconstruction("segments", loss=loss)({"segments": unpadded}, {})[0])
