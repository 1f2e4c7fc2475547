"""`mmmae bench memory` on the micro recipe: the model state from real counts, the activation
fit against a measurement at another batch, the largest batch, the refusals."""

import math
from pathlib import Path

import gin
import pytest
import torch
from accelerate import init_empty_weights
from torch.distributed._tools.mem_tracker import MemTracker

from mmmae.bench.memory import (
    CHECK_TOLERANCE,
    GIB,
    ActivationFit,
    StrategyPlan,
    empty_weights,
    fit_activations,
    largest_batch,
    model_shape,
    sample_shapes,
    state_bytes,
    step_activations,
)
from mmmae.check import first_batch
from mmmae.config import parse_config
from mmmae.masking.rng import MaskRNG
from mmmae.nn.pos_embed import sincos_pos_embed
from mmmae.optim import build_optimizer
from tests.conftest import MICRO_GIN
from tests.refusal import refusal

MICRO_OVERRIDES = str(Path(__file__).parents[1] / "fixtures" / "micro_overrides.gin")


@pytest.fixture()
def micro():
    """The micro recipe's model builder and its batch shapes."""
    parse_config([MICRO_GIN])
    make_model = gin.query_parameter("pretrain.model").scoped_configurable_fn
    sample, _ = first_batch(gin.query_parameter("pretrain.dataset").scoped_configurable_fn(), 1)
    return make_model, sample_shapes(sample)


def test_parameter_gradient_and_optimizer_bytes_are_the_models_real_ones(micro):
    make_model, shapes = micro
    model = make_model()
    optimizer, _ = build_optimizer(model, 1e-3, 0.05, (0.9, 0.95), 10, 1, 0.0)
    batch = {k: torch.rand((2, *shape)).to(dtype) for k, (shape, dtype) in shapes.items()}
    model(batch, MaskRNG.seeded(0, torch.device("cpu"))).loss.backward()
    optimizer.step()
    trainable = [p for p in model.parameters() if p.requires_grad]
    moments = sum(optimizer.state[p][name].nbytes for p in trainable for name in ("exp_avg", "exp_avg_sq"))
    single = state_bytes(model_shape(model), "DDP", "fp32", processes=1)
    assert single["parameters"] == sum(p.numel() * p.element_size() for p in model.parameters())
    assert single["gradients"] == sum(p.grad.nbytes for p in trainable)
    assert single["optimizer"] == moments
    sharded = state_bytes(model_shape(model), "FSDP", "fp32", processes=4)
    assert sharded["parameters"] == math.ceil(single["parameters"] / 4)
    assert sharded["optimizer"] == math.ceil(moments / 4)
    assert state_bytes(model_shape(model), "DDP", "fp32", processes=4)["gradients"] == 2 * single["gradients"]
    with init_empty_weights():  # how the plan builds it: the same shapes, nothing allocated
        assert model_shape(make_model()) == model_shape(model)


def test_the_fake_step_counts_what_the_real_step_allocates(micro):
    make_model, shapes = micro
    torch.manual_seed(0)
    model = make_model().train()
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    tracker = MemTracker()
    tracker.track_external(model)
    start = tracker.get_tracker_snapshot("current")[torch.device("cpu")]["Total"]
    sincos_pos_embed.cache_clear()  # the step builds its position tables, as the fake step does
    with tracker:
        batch = {k: torch.zeros((2, *shape), dtype=dtype) for k, (shape, dtype) in shapes.items()}
        model(batch, MaskRNG.seeded(0, torch.device("cpu"))).loss.backward()
    real = tracker.get_tracker_snapshot("peak")[torch.device("cpu")]["Total"] - start
    # The same ops on the same shapes: the same allocations, each rounded to the tracker's 512 bytes.
    assert step_activations(make_model, shapes, 2, "fp32", checkpointing=False) == real


def plan(per_sample: float, fixed: float, check_error: float = 0.0) -> StrategyPlan:
    measured_at_8 = (fixed + 8 * per_sample) / (1 + check_error)
    fit = ActivationFit((1, 2, 8), (round(fixed + per_sample), round(fixed + 2 * per_sample), round(measured_at_8)))
    return StrategyPlan("DDP", "fp32", False, parameters=3 * GIB, gradients=GIB, optimizer=2 * GIB, gathered=0,
                        activations=fit, largest_batch={})


def test_the_largest_batch_is_the_last_that_fits():
    strategy = plan(per_sample=1.5 * GIB, fixed=0.25 * GIB)
    for gib in (8, 24, 40, 80):
        batch = largest_batch(strategy, gib)
        assert strategy.total(batch) <= gib * GIB < strategy.total(batch + 1)
    assert largest_batch(strategy, 6) == 0  # the model state alone fills it
    assert largest_batch(plan(per_sample=GIB, fixed=0, check_error=0.2), 80) is None  # the fit missed its check


def test_a_missing_gin_file_is_one_message(capsys):
    message = refusal(["bench", "memory", "--gin_file", "recipes/no_such_recipe.gin"], capsys)
    assert message.startswith("mmmae bench: gin file not found: recipes/no_such_recipe.gin")


@pytest.mark.parametrize("sizes", ["24,forty", "24,-40", ""])
def test_bad_gpu_sizes_are_one_message(sizes, capsys):
    message = refusal(["bench", "memory", "--gin_file", MICRO_GIN, "--gpu_gb", sizes], capsys)
    assert message.startswith(f"mmmae bench: --gpu_gb {sizes!r}: ") and "e.g. 24,40,80" in message


def test_the_activation_fit_predicts_a_measurement_at_another_batch():
    parse_config(["recipes/videomae_v2.gin", MICRO_OVERRIDES])  # running-cell masking: nonzero, run for real
    make_model = gin.query_parameter("pretrain.model").scoped_configurable_fn
    sample, _ = first_batch(gin.query_parameter("pretrain.dataset").scoped_configurable_fn(), 1)
    fit = fit_activations(make_model, sample_shapes(sample), "autocast", checkpointing=True, batches=(2, 4, 12))
    assert fit.per_sample > 0
    assert abs(fit.predict(12) - fit.measured[2]) <= CHECK_TOLERANCE * fit.measured[2]
    assert fit.holds


def test_a_json_path_in_a_missing_folder_is_one_message_before_measuring(capsys, monkeypatch):
    monkeypatch.setattr("mmmae.bench.memory.plan_memory", lambda *args: pytest.fail("measured before the check"))
    message = refusal(["bench", "memory", "--gin_file", MICRO_GIN, "--json", "/nonexistent/dir/plan.json"], capsys)
    assert message.startswith("mmmae bench: --json /nonexistent/dir/plan.json: the folder /nonexistent/dir does not "
                              "exist")


def test_a_frozen_vq_keeps_its_weights_and_the_step_is_measured():
    parse_config(["recipes/motionaura.gin", MICRO_OVERRIDES])  # VideoCodes: a frozen VQ from the zoo
    make_model = gin.query_parameter("pretrain.model").scoped_configurable_fn
    with empty_weights():
        model = make_model()
    assert all(p.is_meta for p in model.parameters())
    assert not any(p.is_meta for p in model.modalities["video"].tokenizer.frozen.model.parameters())
    sample, _ = first_batch(gin.query_parameter("pretrain.dataset").scoped_configurable_fn(), 1)
    fit = fit_activations(make_model, sample_shapes(sample), "bf16", checkpointing=False, batches=(2, 4, 6))
    assert fit.per_sample > 0
