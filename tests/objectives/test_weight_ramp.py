"""Loss weights that follow the optimizer step (CDFSL-V's curriculum)."""

import math

import pytest
import torch

from mmmae.config import parse_config
from mmmae.masking.rng import MaskRNG
from mmmae.model import MaskedAutoencoder
from mmmae.objectives.weight_ramp import CosineRamp, LinearRamp
from tests.conftest import MICRO_GIN


def test_the_ramp_follows_cdfsl_vs_lambda():
    ramp = CosineRamp(steps=100)
    assert ramp(0) == 0.0
    assert ramp(30) == pytest.approx(0.75 * (1 - math.cos(math.pi * 0.3)))
    reaches = 100 * math.acos(1 - 1 / 0.75) / math.pi  # 60.8: "reaches 1 at e/E ≈ 0.61"
    assert ramp(math.floor(reaches)) < 1.0 == ramp(math.ceil(reaches)) == ramp(100) == ramp(500)
    assert CosineRamp(steps=100, final=0.5)(100) == 0.5


def test_a_bad_ramp_is_refused():
    with pytest.raises(ValueError, match="CosineRamp.steps must be at least 1"):
        CosineRamp(steps=0)
    with pytest.raises(ValueError, match="CosineRamp.scale must be positive"):
        CosineRamp(steps=10, scale=0)


def test_the_linear_ramp_rises_from_zero_to_final_and_stays():
    ramp = LinearRamp(steps=40, final=1e-3)
    assert ramp(0) == 0.0
    assert ramp(10) == pytest.approx(0.25e-3)
    assert ramp(39) < ramp(40) == ramp(41) == ramp(10_000) == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="LinearRamp.steps must be at least 1"):
        LinearRamp(steps=0)


def test_the_model_weighs_an_objective_by_the_step_it_is_given():
    parse_config([MICRO_GIN], ["CosineRamp.steps = 10", "video/Reconstruction.weight = @CosineRamp()"])
    model = MaskedAutoencoder()
    batch = {"video": torch.rand(2, 3, 4, 16, 16)}
    for step in (0, 3, 10):
        out = model(batch, MaskRNG.seeded(0, step=step))
        value = out.logs["video_reconstruction"]
        assert out.logs["video_reconstruction_weight"] == pytest.approx(CosineRamp(10)(step))
        assert torch.isclose(out.loss.detach(), CosineRamp(10)(step) * value)
