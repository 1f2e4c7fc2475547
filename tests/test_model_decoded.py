"""A decoder's Decoded answer: its target replaces the tokens' in Reconstruction, its terms reach DecoderTerm,
and a decoder that takes_target is given the target at plan.predict."""

import pytest
import torch
from torch import nn

from mmmae.masking.random import RandomMasking
from mmmae.masking.rng import MaskRNG
from mmmae.model import MaskedAutoencoder, Modality
from mmmae.nn.encoder import Encoder
from mmmae.objectives.decoder_term import DecoderTerm
from mmmae.objectives.reconstruction import Reconstruction
from mmmae.tokenizers.video import TubeletTokenizer
from mmmae.types import Decoded, gather_tokens


class NoisePredictingDecoder(nn.Module):
    """A stand-in generative decoder: predicts zeros + a learned bias, is scored against a fixed
    'noise' it draws from the target it is given, and returns a per-sample term."""

    takes_target = True

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(out_dim))
        self.seen_target = None

    def forward(self, encoded, grid, plan, target):
        self.seen_target = target
        prediction = self.bias.expand(*plan.predict.shape, -1)
        return Decoded(prediction, target=2 * target, terms={"kl": target.pow(2).mean(dim=(1, 2))})


def model_and_batch(presence: bool = False):
    torch.manual_seed(0)
    tokenizer = TubeletTokenizer(dim=32, patch=8, tubelet=2, channels=3)
    video = Modality("video", tokenizer, RandomMasking(ratio=0.5), decoder=NoisePredictingDecoder)
    model = MaskedAutoencoder([video], lambda modalities: Encoder(modalities, dim=32, depth=1, heads=2),
                              [Reconstruction("video"), DecoderTerm("video", "kl", weight=0.5)])
    batch = {"video": torch.rand(3, 3, 4, 16, 16)}
    if presence:
        batch["video_present"] = torch.tensor([True, False, True])
    return model, batch


def test_a_decoder_that_takes_the_target_gets_it_at_plan_predict():
    model, batch = model_and_batch()
    out = model(batch, MaskRNG.seeded(0)).outputs["video"]
    expected = gather_tokens(out.tokens.target, out.plan.predict)
    assert torch.equal(model.modalities["video"].decoder.seen_target, expected)
    assert torch.equal(out.prediction_target, 2 * expected)


def test_reconstruction_scores_against_the_decoded_target_and_decoder_term_weighs_the_terms():
    model, batch = model_and_batch()
    result = model(batch, MaskRNG.seeded(0))
    out = result.outputs["video"]
    mse = (out.prediction - out.prediction_target).pow(2).mean()
    against_tokens = (out.prediction - gather_tokens(out.tokens.target, out.plan.predict)).pow(2).mean()
    kl = out.decoder_terms["kl"].mean()
    assert torch.allclose(result.logs["video_reconstruction"], mse, rtol=1e-5)
    assert not torch.allclose(result.logs["video_reconstruction"], against_tokens, rtol=1e-3)
    assert torch.allclose(result.logs["video_kl"], kl, rtol=1e-5)
    assert torch.allclose(result.loss, mse + 0.5 * kl, rtol=1e-5)


def test_decoder_term_skips_samples_without_the_modality():
    model, batch = model_and_batch(presence=True)
    result = model(batch, MaskRNG.seeded(0))
    terms = result.outputs["video"].decoder_terms["kl"]
    assert torch.allclose(result.logs["video_kl"], terms[[0, 2]].mean(), rtol=1e-5)
    assert result.logs["video_kl_skipped"] == 1


def test_decoder_term_names_a_term_the_decoder_does_not_return():
    model, batch = model_and_batch()
    model.objectives[1].term = "commitment"
    with pytest.raises(ValueError, match=r"returns no term 'commitment' \(it returns \['kl'\]\)"):
        model(batch, MaskRNG.seeded(0))
