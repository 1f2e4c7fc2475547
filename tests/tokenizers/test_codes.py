"""VideoCodes: a frozen VQ's codes as tokens, and its decoder back to pixels."""

import copy

import pytest
import torch
from einops import rearrange

from mmmae.masking.rng import MaskRNG
from mmmae.tokenizers.codes import VideoCodes
from mmmae.types import Tokenizer
from tests.targets.teachers import save_micro_teacher
from tests.tokenizers.vq_models import CODES, GRID, clip, save_micro_vq


@pytest.fixture(scope="module")
def vq(tmp_path_factory):
    return save_micro_vq(tmp_path_factory.mktemp("codes"))


def test_tokens_are_the_frozen_vqs_codes_embedded_on_its_grid(vq):
    directory, model = vq
    tokenizer = VideoCodes(dim=24, source=str(directory))
    assert isinstance(tokenizer, Tokenizer) and tokenizer.target_dim == CODES
    video = clip()
    tokens = tokenizer(video)
    encoded, _ = model.encode({"video": video}, "video")
    expected = model.modalities["video"].decoder.codes(encoded)
    assert tokens.grid == GRID and tokens.target.dtype == torch.int64
    assert torch.equal(tokens.target, expected)
    assert tokens.embed.shape == (2, 32, 24)
    torch.testing.assert_close(tokens.embed, tokenizer.embed_codes(expected, GRID), rtol=0, atol=0)


def test_only_the_code_embedding_is_trained_and_saved(vq):
    tokenizer = VideoCodes(dim=24, source=str(vq[0]))
    assert list(tokenizer.state_dict()) == ["embed.weight"]
    tokenizer(clip()).embed.sum().backward()
    assert tokenizer.embed.weight.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in tokenizer.frozen.model.parameters())
    assert copy.deepcopy(tokenizer).frozen is tokenizer.frozen


def test_decoded_codes_are_the_vqs_own_reconstruction_in_pixels(vq):
    directory, model = vq
    tokenizer = VideoCodes(dim=24, source=str(directory))
    video = clip()
    pixels = tokenizer.decode_targets(tokenizer(video).target, GRID)
    assert pixels.shape == video.shape
    prediction = model({"video": video}, MaskRNG.seeded(0)).outputs["video"].prediction  # raw pixel patches
    expected = rearrange(prediction, "b (t h w) (p0 p1 p2 c) -> b c (t p0) (h p1) (w p2)", t=2, h=4, w=4, p0=2,
                         p1=4, p2=4).clamp(0, 1)
    # the forward decodes the straight-through value z + (e - z), decode_targets e itself: a few
    # float32 ulps of unit vectors apart, carried through one block to pixels in [0, 1]
    torch.testing.assert_close(pixels, expected, rtol=1e-5, atol=1e-5)


def test_a_model_without_a_quantized_decoder_is_refused_naming_the_binding(tmp_path):
    directory, _ = save_micro_teacher(tmp_path)
    with pytest.raises(ValueError, match="VideoCodes.source.*not a QuantizedDecoder"):
        VideoCodes(dim=24, source=str(directory))
