"""Projection heads: shapes, linear vs. MLP, gin binding, argument checks."""

import gin
import pytest
import torch
from torch import nn

from mmmae.nn.heads import ProjectionHead
from tests.float32_bound import rounding_bound


def test_linear_head_is_one_affine_map():
    head = ProjectionHead(6, 3)
    x = torch.randn(5, 6)
    assert head(x).shape == (5, 3)
    assert [type(m) for m in head.layers] == [nn.Linear]
    got, want = head(2 * x) - head(torch.zeros(1, 6)), 2 * (head(x) - head(torch.zeros(1, 6)))
    assert (got - want).abs().max() <= rounding_bound(head(2 * x), 3, 6)  # 6 inputs; 2 outputs taken apart


def test_mlp_head_is_nonlinear_with_a_hidden_width():
    head = ProjectionHead(6, 3, kind="mlp", hidden=10)
    assert [m.weight.shape for m in head.layers if isinstance(m, nn.Linear)] == [(10, 6), (3, 10)]
    x = torch.randn(5, 6)
    assert head(x).shape == (5, 3)
    got, want = head(2 * x) - head(torch.zeros(1, 6)), 2 * (head(x) - head(torch.zeros(1, 6)))
    assert (got - want).abs().max() > rounding_bound(head(2 * x), 4, 10)  # 6 inputs, 10 hidden units


def test_mlp_hidden_defaults_to_input_width_and_gin_can_set_it():
    assert ProjectionHead(6, 3, kind="mlp").layers[0].out_features == 6
    gin.parse_config("ProjectionHead.hidden = 12")
    assert ProjectionHead(6, 3, kind="mlp").layers[0].out_features == 12


@pytest.mark.parametrize("kwargs, message", [(dict(kind="deep"), "kind"), (dict(hidden=8), "only used with")])
def test_bad_arguments_fail(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ProjectionHead(6, 3, **kwargs)
