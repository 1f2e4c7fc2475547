"""Global distillation: a head on the pooled visible encoding against a teacher's embedding."""

import pytest
import torch
import torch.nn.functional as F

from mmmae.objectives.global_distillation import GlobalDistillation
from mmmae.types import MaskPlan, ModalityOutput, Tokens


class FixedEmbedding:
    """An EmbeddingTarget returning a fixed (B, 3) embedding whatever the input."""

    dim = 3

    def __init__(self, value: torch.Tensor):
        self.value = value

    def __call__(self, inputs) -> torch.Tensor:
        return self.value


def outputs(present=(True, True)) -> dict:
    encoded = torch.arange(2 * 3 * 4, dtype=torch.float32).view(2, 3, 4)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    plan = MaskPlan(keep=torch.tensor([[0, 1, 2]] * 2), predict=torch.tensor([[3]] * 2))
    return {"video": ModalityOutput(Tokens(torch.zeros(2, 4, 4), None, (4,)), plan, encoded, None,
                                    torch.tensor(present), mask)}


@pytest.mark.parametrize("loss", ["cosine", "mse", "smooth_l1"])
def test_the_head_of_the_pooled_encoding_against_the_target(loss):
    target = torch.randn(2, 3, generator=torch.Generator().manual_seed(0))
    objective = GlobalDistillation("video", FixedEmbedding(target), in_dim=4, loss=loss)
    value, logs = objective(outputs(), {"video": None})
    encoded = outputs()["video"].encoded
    pooled = torch.stack([encoded[0, :2].mean(0), encoded[1].mean(0)])
    prediction = objective.head(pooled)
    expected = {"cosine": 1 - F.cosine_similarity(prediction, target, dim=-1),
                "mse": (prediction - target).pow(2).mean(-1),
                "smooth_l1": F.smooth_l1_loss(prediction, target, reduction="none").mean(-1)}[loss].mean()
    torch.testing.assert_close(value, expected)
    assert torch.equal(logs["video_global_distillation"], value)
    value.backward()
    assert objective.head.weight.grad is not None


def test_samples_without_the_modality_are_skipped():
    target = torch.randn(2, 3, generator=torch.Generator().manual_seed(0))
    objective = GlobalDistillation("video", FixedEmbedding(target), in_dim=4)
    both, _ = objective(outputs(), {"video": None})
    second, logs = objective(outputs(present=(False, True)), {"video": None})
    prediction = objective.head(outputs()["video"].encoded[1].mean(0))
    torch.testing.assert_close(second, 1 - F.cosine_similarity(prediction, target[1], dim=-1))
    assert logs["video_global_distillation_skipped"] == 1


def test_an_unknown_loss_names_the_binding():
    with pytest.raises(ValueError, match=r"GlobalDistillation.loss = 'l1' is not one of"):
        GlobalDistillation("video", FixedEmbedding(torch.zeros(1, 3)), in_dim=4, loss="l1")
