"""`mmmae bench step` at a micro geometry: every variant runs and reports what it measured."""

import pytest
import torch

from mmmae.bench.contenders import Geometry, hf_config, tube_mask, videomae_pair
from mmmae.bench.step import Comparison, Timing, bench_step, format_step_bench
from mmmae.types import MaskPlan
from tests.float32_bound import rounding_bound, vit_stages

MICRO = Geometry(size="tiny", frames=4, image=32, ratio=0.75, batch=2, depth=1, decoder_depth=1)


def test_tube_mask_hides_the_same_positions_in_every_frame():
    mask = tube_mask(MICRO)
    assert mask.shape == (2, MICRO.tokens) and (mask.sum(1) == 2 * 3).all()  # int(0.75 * 4) of 4, in 2 frames
    assert torch.equal(mask[:, :4], mask[:, 4:])


def test_the_pair_computes_the_same_loss_on_the_same_mask():
    hf, ours, _ = videomae_pair(MICRO, torch.device("cpu"), torch.float32)
    assert hf_config(MICRO).hidden_size == ours.model.encoder.dim
    mask = tube_mask(MICRO)
    plan = MaskPlan(keep=(~mask).nonzero()[:, 1].view(2, -1), predict=mask.nonzero()[:, 1].view(2, -1))
    ours.model.modalities["video"].masker = lambda tokens, batch, rng: plan
    with torch.no_grad():
        reference = hf.loss()
        # the models' stages, then the loss's mean over the B * Q * C*t*p*p predicted values, the longest sum
        count = MICRO.batch * int(mask[0].sum()) * 3 * 2 * 16 * 16
        bound = rounding_bound(reference, vit_stages(MICRO.depth, MICRO.decoder_depth) + 1, count)
        assert ours.loss().item() == pytest.approx(reference.item(), abs=bound)


def test_comparison_ratio_is_of_medians_and_spread_of_rounds():
    baseline = Timing("a", 2, [1.0, 2.0, 3.0])
    contender = Timing("b", 2, [0.5, 1.0, 2.0])
    comparison = Comparison("b / a", baseline, contender)
    assert comparison.speedup == 2.0 and comparison.spread == (1.5, 2.0)


def test_bench_step_runs_every_variant_and_reports_each():
    variants = ("transformers", "dual_masking", "packing", "backend", "compile")
    result = bench_step(MICRO, variants, rounds=2, steps=1, compile_backend="eager", profile=True)
    pairs = [(c.baseline.name, c.contender.name) for c in result.comparisons]
    assert pairs == [("transformers", "mmmae"), ("mmmae", "dual masking"), ("attention math", "mmmae"),
                     ("mmmae", "torch.compile"), ("video step + audio step", "video + audio")]
    assert result.peak_flops > 0
    for comparison in result.comparisons:
        assert len(comparison.baseline.seconds) == len(comparison.contender.seconds) == 2
    versus_hf = result.comparisons[0]
    assert versus_hf.baseline.name == "transformers" and versus_hf.contender.flops > 0
    assert versus_hf.contender.flops == pytest.approx(versus_hf.baseline.flops, rel=0.1)
    assert versus_hf.contender.state_bytes > 0
    assert versus_hf.contender.tensor_bytes > 0 and versus_hf.baseline.tensor_bytes > 0
    text = format_step_bench(result)
    assert "mmmae / transformers VideoMAEForPreTraining" in text and "of peak" in text and "step tensor peak" in text
    assert "torch.compile (eager): first step" in text
    assert set(result.profiles) == {"transformers", "mmmae"}
    assert all(seconds["matmul"] > 0 and seconds["attention"] > 0 for seconds in result.profiles.values())
    assert "time per step by op family" in text


def test_unknown_variant_is_named():
    with pytest.raises(ValueError, match="fast_path"):
        bench_step(MICRO, ["fast_path"])
