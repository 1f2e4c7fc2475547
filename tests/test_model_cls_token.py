"""Modality.cls_token: a class token that takes part in the encoder, comes out separately and
reaches the decoders that ask for it; models without one keep their state-dict keys."""

import pytest
import torch
from torch.utils.data import default_collate

from mmmae.config import parse_config
from mmmae.data.moving_digits.dataset import MovingDigits
from mmmae.masking.rng import MaskRNG
from mmmae.model import MaskedAutoencoder
from tests.conftest import MICRO_GIN


def model_and_batch(*bindings: str):
    parse_config([MICRO_GIN], bindings)
    torch.manual_seed(0)
    model = MaskedAutoencoder().eval()
    data = MovingDigits(split="train", num_samples=4, frames=4, size=16, digit_size=8)
    return model, default_collate([data[i] for i in range(4)])


def forward(model, batch):
    with torch.no_grad():
        return model(batch, MaskRNG.seeded(0)).outputs["video"]


def test_without_a_class_token_nothing_changes_in_the_state_dict():
    model, _ = model_and_batch()
    assert not [k for k in model.state_dict() if "cls" in k or "positions" in k]
    assert model.modalities["video"].cls_token is None


def test_class_token_takes_part_and_comes_out_separately():
    model, batch = model_and_batch("video/Modality.cls_token = True")
    out = forward(model, batch)
    assert "modalities.video.cls_token" in model.state_dict()
    assert out.encoded.shape == (4, 2, 32) and out.cls.shape == (4, 32) and out.mask.shape == (4, 2)
    with torch.no_grad():
        model.modalities["video"].cls_token.add_(1.0)
    changed = forward(model, batch)
    assert not torch.allclose(out.encoded, changed.encoded), "the visible tokens attend to the class token"
    encoded, valid = model.encode(batch, "video")
    assert encoded.shape == (4, 8, 32) and valid is None


def test_encoded_decoder_class_token_changes_predictions():
    model, batch = model_and_batch("video/Modality.cls_token = True", "video/MaskTokenDecoder.cls_token = 'encoded'")
    decoder = model.modalities["video"].decoder
    assert not decoder.cls_embed.any(), "the class position starts at zero (MAE's sin-cos class row)"
    out = forward(model, batch)
    with torch.no_grad():
        model.modalities["video"].cls_token.add_(1.0)
    changed = forward(model, batch)
    assert out.prediction.shape == changed.prediction.shape == (4, 6, 2 * 8 * 8 * 3)
    assert not torch.allclose(out.prediction, changed.prediction)


def test_learned_decoder_class_token_needs_no_encoder_class_token():
    model, batch = model_and_batch("video/MaskTokenDecoder.cls_token = 'learned'")
    out = forward(model, batch)
    with torch.no_grad():
        model.modalities["video"].decoder.cls_embed.add_(1.0)
    assert not torch.allclose(out.prediction, forward(model, batch).prediction)


def test_encoded_decoder_class_token_without_one_in_the_encoder_is_an_error():
    model, batch = model_and_batch("video/MaskTokenDecoder.cls_token = 'encoded'")
    with pytest.raises(ValueError, match=r"Modality\.cls_token = True"):
        forward(model, batch)


def test_padding_mask_gets_a_valid_class_entry():
    model, _ = model_and_batch("video/Modality.cls_token = True")
    padding = torch.tensor([[1, 1, 0], [1, 0, 0]]).bool()
    tokens, valid = model.modalities["video"].with_cls(torch.zeros(2, 3, 32), padding)
    assert tokens.shape == (2, 4, 32) and valid[:, 0].all() and valid[:, 1:].tolist() == [[1, 1, 0], [1, 0, 0]]
