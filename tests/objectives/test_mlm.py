"""Masked language modelling: cross-entropy at the predicted ids, padding and absent samples left out."""

import pytest
import torch
import torch.nn.functional as F

from mmmae.objectives.mlm import MaskedLanguageModeling
from mmmae.types import MaskPlan, ModalityOutput, Tokens

IDS = torch.tensor([[5, 2, 7, 0], [3, 3, 1, 0]])  # pad id 0 at the end of both
PREDICT = torch.tensor([[1, 3], [0, 2]])


def output(logits, present=(True, True), loss_weight=None):
    tokens = Tokens(torch.zeros(2, 4, 1), IDS, (4,), valid=IDS != 0)
    plan = MaskPlan(keep=torch.tensor([[0, 2], [1, 3]]), predict=PREDICT, loss_weight=loss_weight)
    return ModalityOutput(tokens, plan, torch.zeros(2, 2, 1), logits, torch.tensor(present))


def logits():
    return torch.randn(2, 2, 8, generator=torch.Generator().manual_seed(0), requires_grad=True)


def test_matches_cross_entropy_over_counted_tokens():
    x = logits()
    loss, logs = MaskedLanguageModeling()({"text": output(x)}, {})
    # Counted: (0, pos 1 -> id 2), (1, pos 0 -> id 3), (1, pos 2 -> id 1); (0, pos 3) is padding.
    expected = F.cross_entropy(torch.stack([x[0, 0], x[1, 0], x[1, 1]]), torch.tensor([2, 3, 1]))
    assert torch.isclose(loss, expected)
    assert torch.equal(logs["text_mlm"], loss.detach())
    hits = torch.tensor([x[0, 0].argmax() == 2, x[1, 0].argmax() == 3, x[1, 1].argmax() == 1]).float().mean()
    assert torch.isclose(logs["text_mlm_accuracy"], hits)
    assert logs["text_mlm_skipped"] == 0


def test_accuracy_is_one_for_perfect_logits():
    x = F.one_hot(IDS.gather(1, PREDICT), 8).float() * 10
    _, logs = MaskedLanguageModeling()({"text": output(x)}, {})
    assert logs["text_mlm_accuracy"] == 1


def test_loss_weight_scales_tokens():
    x = logits()
    weight = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
    loss, _ = MaskedLanguageModeling()({"text": output(x, loss_weight=weight)}, {})
    expected = F.cross_entropy(torch.stack([x[0, 0], x[1, 1]]), torch.tensor([2, 1]))
    assert torch.isclose(loss, expected)


def test_absent_samples_are_skipped_and_counted():
    x = logits()
    loss, logs = MaskedLanguageModeling(modality="caption")({"caption": output(x, present=(False, True))}, {})
    expected = F.cross_entropy(x[1], torch.tensor([3, 1]))
    assert torch.isclose(loss, expected)
    assert logs["caption_mlm_skipped"] == 1 and "caption_mlm_accuracy" in logs


def test_strict_names_objective_modality_and_indices():
    objective = MaskedLanguageModeling(strict=True)
    with pytest.raises(ValueError, match=r"text_mlm.*'text'.*\[41\]"):
        objective({"text": output(logits(), present=(True, False))}, {"index": torch.tensor([40, 41])})


def test_nothing_usable_gives_zero_loss_that_backpropagates():
    x = logits()
    loss, logs = MaskedLanguageModeling()({"text": output(x, present=(False, False))}, {})
    assert loss == 0 and logs["text_mlm_skipped"] == 2
    loss.backward()
    assert x.grad is not None and (x.grad == 0).all()
