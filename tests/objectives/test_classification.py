"""The supervised task head: cross-entropy on the pooled encoding, unlabelled samples left out."""

import pytest
import torch
import torch.nn.functional as F

from mmmae.config import parse_config
from mmmae.masking.rng import MaskRNG
from mmmae.model import MaskedAutoencoder
from mmmae.objectives.classification import Classification
from mmmae.types import MaskPlan, ModalityOutput, Tokens
from tests.conftest import MICRO_GIN


def output(encoded: torch.Tensor, present=(True, True, True)) -> ModalityOutput:
    b, k, _ = encoded.shape
    plan = MaskPlan(keep=torch.arange(k).expand(b, k), predict=torch.zeros(b, 0, dtype=torch.long))
    out = ModalityOutput(Tokens(encoded, None, (k,)), plan, encoded, None, torch.tensor(present))
    out.full, out.full_mask = encoded, None
    return out


def test_the_loss_is_the_cross_entropy_of_the_labelled_samples_only():
    torch.manual_seed(0)
    objective = Classification("video", num_classes=3, in_dim=4)
    encoded = torch.randn(3, 5, 4)
    labels = torch.tensor([2, -1, 0])  # the second sample is unlabelled
    loss, logs = objective({"video": output(encoded)}, {"label": labels})
    logits = objective.head(encoded.mean(1))
    expected = F.cross_entropy(logits[[0, 2]], labels[[0, 2]])
    assert torch.isclose(loss, expected, rtol=1e-5)
    assert logs["video_label_classification_labelled"] == 2


def test_a_sample_without_the_modality_takes_no_part():
    torch.manual_seed(0)
    objective = Classification("video", num_classes=3, in_dim=4)
    encoded = torch.randn(3, 5, 4)
    labels = torch.tensor([2, 1, 0])
    loss, _ = objective({"video": output(encoded, present=(True, False, True))}, {"label": labels})
    expected = F.cross_entropy(objective.head(encoded.mean(1))[[0, 2]], labels[[0, 2]])
    assert torch.isclose(loss, expected, rtol=1e-5)


def test_a_missing_label_names_the_objective_and_the_binding():
    objective = Classification("video", num_classes=3, in_dim=4, label="action")
    with pytest.raises(KeyError, match="video_action_classification: the batch has no 'action'"):
        objective({"video": output(torch.zeros(1, 2, 4), (True,))}, {"label": torch.zeros(1)})


def test_in_a_model_the_head_trains_on_the_full_view_and_predicts_from_it():
    parse_config([MICRO_GIN], ["Classification.modality = 'video'", "Classification.num_classes = 10",
                               "Classification.in_dim = %ENC_DIM",
                               "MaskedAutoencoder.objectives = [@video/Reconstruction(), @Classification()]"])
    model = MaskedAutoencoder()
    objective = model.objectives[1]
    batch = {"video": torch.rand(2, 3, 4, 16, 16), "label": torch.tensor([3, 7])}
    out = model(batch, MaskRNG.seeded(0, torch.device("cpu")))
    logits = objective.predict(model, batch)
    expected = F.cross_entropy(logits, batch["label"])
    assert torch.isclose(out.logs["video_label_classification"], expected, rtol=1e-4)
