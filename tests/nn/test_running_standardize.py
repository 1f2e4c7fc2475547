"""RunningStandardize: bias-corrected running moments, shared by training and evaluation."""

import pytest
import torch

from mmmae.nn.running_standardize import RunningStandardize
from tests.float32_bound import rounding_bound


def test_first_batch_is_standardised_by_its_own_moments():
    x = torch.randn(16, 3, generator=torch.Generator().manual_seed(0)) * torch.tensor([4.0, 0.5, 1.0]) + 7.0
    layer = RunningStandardize(3)
    y = layer(x)
    rounding = rounding_bound(y, 3, 16)  # the batch's moments, then y's, over 16 rows
    assert torch.allclose(y.mean(dim=0), torch.zeros(3), atol=rounding, rtol=0)
    # y's std is sqrt(var / (var + eps)), below 1 by at most eps / (2 var) at the smallest variance
    shrink = layer.eps / (2 * x.var(dim=0, unbiased=False).min().item())
    assert torch.allclose(y.std(dim=0, unbiased=False), torch.ones(3), atol=shrink + rounding, rtol=0)


def test_moments_are_the_corrected_exponential_average():
    layer = RunningStandardize(1, momentum=0.5)
    a, b = torch.tensor([[0.0], [2.0]]), torch.tensor([[2.0], [6.0]])  # means 1 and 4, variances 1 and 4
    layer(a), layer(b)
    # weights 0.5 * 0.5 on a and 0.5 on b, over 1 - 0.5^2: the mixture of the two batches, 1/3 and 2/3
    mean = (1 * 1 + 4 * 2) / 3
    var = (1 * (1 + 1**2) + 2 * (4 + 4**2)) / 3 - mean**2
    assert layer.mean.item() == pytest.approx(mean)
    assert layer.var.item() == pytest.approx(var)
    assert layer.weight.item() == pytest.approx(0.75)


def test_only_selected_rows_update_and_no_rows_change_nothing():
    layer = RunningStandardize(1)
    x = torch.tensor([[2.0], [float("nan")]])  # a non-finite row that is not selected stays out
    layer(x, torch.tensor([True, False]))
    assert torch.allclose(layer.mean, torch.tensor([2.0])) and torch.allclose(layer.var, torch.tensor([0.0]))
    before = [b.clone() for b in layer.buffers()]
    layer(x, torch.tensor([False, False]))
    assert all(torch.equal(b, c) for b, c in zip(before, layer.buffers()))


def test_statistics_stay_float32_under_autocast():
    x = torch.randn(64, 8, generator=torch.Generator().manual_seed(2)) * 0.15 + 2.4
    exact = RunningStandardize(8)
    exact(x)
    mixed = RunningStandardize(8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed(x.bfloat16().float())  # the values bf16 can hold, fed as autocast would run them
    reference = RunningStandardize(8)
    reference(x.bfloat16().float())
    assert mixed.mean.dtype == torch.float32
    assert torch.allclose(mixed.mean, reference.mean, atol=1e-6) and torch.allclose(mixed.var, reference.var, rtol=1e-5)
    assert torch.allclose(mixed.mean, exact.mean, atol=0.01)


def test_evaluation_is_per_sample_and_frozen():
    layer = RunningStandardize(3)
    layer(torch.randn(32, 3) * 3 + 1)
    layer.eval()
    x = torch.randn(5, 3)
    together = layer(x)
    alone = torch.cat([layer(row[None]) for row in x])
    assert torch.allclose(together, alone)
    assert torch.equal(layer(x), together)  # no update in evaluation


def test_fresh_layer_in_evaluation_is_nearly_the_identity_and_state_is_saved():
    layer = RunningStandardize(4).eval()
    x = torch.randn(3, 4)
    assert torch.allclose(layer(x), x, rtol=1e-5)
    assert set(layer.state_dict()) == {"mean", "var", "weight"}


def test_large_common_component_keeps_float32_precision():
    x = torch.randn(64, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 0.3 + 1000.0
    layer = RunningStandardize(3)
    for chunk in x.split(16):
        layer(chunk.float())
    # the variance of each chunk about its mean is about 0.09; the naive E[x^2] - E[x]^2 in float32 gives 0
    assert torch.allclose(layer.mean.double(), x.mean(dim=0), atol=0.05)
    assert torch.allclose(layer.var.double(), x.var(dim=0, unbiased=False), rtol=0.2)


def test_gradient_flows_to_the_input_and_the_statistics_take_none():
    x = torch.randn(8, 2, requires_grad=True)
    layer = RunningStandardize(2)
    layer(x).sum().backward()
    assert x.grad is not None
    assert not any(b.requires_grad for b in layer.buffers())


def test_bad_momentum_is_refused():
    with pytest.raises(ValueError, match="momentum"):
        RunningStandardize(2, momentum=1.0)
