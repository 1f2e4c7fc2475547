"""The VQ decoder: quantise every encoded token, decode the codes, report the VQ terms."""

import pytest
import torch

from mmmae.nn.quantized_decoder import QuantizedDecoder
from mmmae.types import Decoded, MaskPlan

GRID = (2, 2, 3)


def decoder() -> QuantizedDecoder:
    torch.manual_seed(0)
    return QuantizedDecoder(in_dim=12, out_dim=5, num_codes=8, code_dim=4, dim=16, depth=1, heads=2).eval()


def every_token(batch: int = 2) -> MaskPlan:
    every = torch.arange(12).repeat(batch, 1)
    return MaskPlan(keep=every, predict=every)


def test_decoded_predictions_are_the_decoded_codes_with_per_sample_terms():
    vq, encoded = decoder(), torch.randn(2, 12, 12, generator=torch.Generator().manual_seed(1))
    out = vq(encoded, GRID, every_token())
    assert isinstance(out, Decoded) and out.prediction.shape == (2, 12, 5) and out.target is None
    assert sorted(out.terms) == ["codebook", "commitment"] and all(t.shape == (2,) for t in out.terms.values())
    codes = vq.codes(encoded)
    assert codes.shape == (2, 12) and codes.dtype == torch.int64 and int(codes.max()) < 8
    # The straight-through value z + (e - z) differs from e by rounding of unit vectors (|z|, |e| = 1),
    # a few float32 ulps, which two linear layers and one block carry to the outputs.
    torch.testing.assert_close(vq.decode_codes(codes, GRID), out.prediction, rtol=1e-5, atol=1e-5)


def test_predictions_follow_plan_predict():
    vq, encoded = decoder(), torch.randn(1, 12, 12, generator=torch.Generator().manual_seed(2))
    whole = vq(encoded, GRID, every_token(1)).prediction
    some = vq(encoded, GRID, MaskPlan(keep=torch.arange(12)[None], predict=torch.tensor([[1, 7]]))).prediction
    torch.testing.assert_close(some, whole[:, [1, 7]])


def test_a_masker_that_hides_tokens_is_refused_with_the_binding_to_use():
    plan = MaskPlan(keep=torch.arange(6)[None], predict=torch.arange(6, 12)[None])
    with pytest.raises(ValueError, match="PredictEveryToken"):
        decoder()(torch.zeros(1, 6, 12), GRID, plan)
