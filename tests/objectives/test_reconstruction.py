"""Reconstruction over predicted tokens (MSE, cosine, smooth-L1), honouring loss_weight and missing samples."""

import pytest
import torch
import torch.nn.functional as F

from mmmae.objectives.reconstruction import Reconstruction
from mmmae.types import MaskPlan, ModalityOutput, Tokens


def output(loss_weight=None, present=(True, True)) -> ModalityOutput:
    target = torch.arange(2 * 4 * 3, dtype=torch.float32).view(2, 4, 3)
    plan = MaskPlan(keep=torch.tensor([[0, 1], [0, 2]]), predict=torch.tensor([[2, 3], [1, 3]]),
                    loss_weight=loss_weight)
    prediction = torch.zeros(2, 2, 3)
    return ModalityOutput(Tokens(torch.zeros(2, 4, 1), target, (4,)), plan, torch.zeros(2, 2, 1), prediction,
                          torch.tensor(present))


def per_token_mse():
    target = torch.arange(24, dtype=torch.float32).view(2, 4, 3)
    picked = torch.stack([target[0, [2, 3]], target[1, [1, 3]]])
    return picked.pow(2).mean(-1)  # (2, 2)


def test_plain_mean_over_predicted_tokens():
    loss, logs = Reconstruction("video")({"video": output()}, {})
    assert torch.isclose(loss, per_token_mse().mean())
    assert torch.equal(logs["video_reconstruction"], loss)


def test_loss_weight_selects_and_weights_tokens():
    weight = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    loss, _ = Reconstruction("video")({"video": output(weight)}, {})
    expected = (per_token_mse() * weight).sum() / weight.sum()
    assert torch.isclose(loss, expected)


def test_absent_samples_are_skipped_and_counted():
    loss, logs = Reconstruction("video")({"video": output(present=(False, True))}, {})
    assert torch.isclose(loss, per_token_mse()[1].mean())
    assert logs["video_reconstruction_skipped"] == 1


def test_strict_names_the_missing_samples():
    batch = {"index": torch.tensor([17, 4])}
    with pytest.raises(ValueError, match=r"video_reconstruction: samples \[17\] lack"):
        Reconstruction("video", strict=True)({"video": output(present=(False, True))}, batch)


def test_an_undecoded_modality_is_named():
    out = output()
    out.prediction = None
    with pytest.raises(ValueError,
                       match=r"video_reconstruction: modality 'video' is not decoded.*video/Modality.decoder"):
        Reconstruction("video")({"video": out}, {})


@pytest.mark.parametrize("loss", ["cosine", "smooth_l1"])
def test_other_distances_per_token(loss):
    out = output()
    out.prediction = torch.randn(2, 2, 3, generator=torch.Generator().manual_seed(0))
    value, _ = Reconstruction("video", loss=loss)({"video": out}, {})
    target = torch.arange(24, dtype=torch.float32).view(2, 4, 3)
    picked = torch.stack([target[0, [2, 3]], target[1, [1, 3]]])
    per_token = (1 - F.cosine_similarity(out.prediction, picked, dim=-1) if loss == "cosine"
                 else F.smooth_l1_loss(out.prediction, picked, reduction="none").mean(-1))
    torch.testing.assert_close(value, per_token.mean())


def test_an_unknown_loss_names_the_binding():
    with pytest.raises(ValueError, match=r"Reconstruction.loss = 'l1' is not one of \('mse', 'cosine', 'smooth_l1'\)"):
        Reconstruction("video", loss="l1")
