"""Graph helpers: edge lists, neighbour means against hand sums, equivariance, errors."""

import pytest
import torch

from mmmae.nn.graph import DifferenceMessages, GraphLayer, edge_index, neighbour_mean
from tests.float32_bound import rounding_bound

NODES = ("a", "b", "c", "d")


def test_edge_index_lists_each_undirected_edge_both_ways():
    edges = edge_index("T", NODES, [["a", "b"], ["c", "b"], ["b", "a"]])
    assert sorted(map(tuple, edges.T.tolist())) == [(0, 1), (1, 0), (1, 2), (2, 1)]
    assert edge_index("T", NODES, "complete").shape == (2, 12)
    assert edge_index("T", ("solo",), "complete").shape == (2, 0)


@pytest.mark.parametrize(
    "adjacency, message",
    [([["a", "z"]], r"unknown \['z'\]"), ([["a", "a"]], "self-loop"), ([["a"]], "not a pair"), ("ring", "'complete'")],
)
def test_bad_adjacency_is_named(adjacency, message):
    with pytest.raises(ValueError, match=message):
        edge_index("Owner", NODES, adjacency)


def test_neighbour_mean_matches_a_hand_computation():
    edges = edge_index("T", NODES, [["a", "b"], ["a", "c"]])  # d is isolated
    x = torch.randn(2, 4, 3)
    got = neighbour_mean(x.index_select(-2, edges[0]), edges, 4)
    expected = torch.stack([(x[:, 1] + x[:, 2]) / 2, x[:, 0], x[:, 0], torch.zeros(2, 3)], dim=1)
    assert torch.allclose(got, expected, atol=rounding_bound(expected, 1, 2))  # a mean of at most 2 neighbours


def test_graph_layer_is_equivariant_to_relabelling_nodes():
    layer = GraphLayer(8)
    chain = [["a", "b"], ["b", "c"], ["c", "d"]]
    order = ("c", "a", "d", "b")
    perm = torch.tensor([NODES.index(n) for n in order])
    x = torch.randn(2, 3, 4, 8)
    out = layer(x, edge_index("T", NODES, chain))
    out_permuted = layer(x[:, :, perm], edge_index("T", order, chain))
    bound = rounding_bound(out, 4, 8)  # neighbour mean, norm and the MLP's 2 linears: sums of <= 8 terms
    assert (out[:, :, perm] - out_permuted).abs().max() <= bound
    assert (out - layer(x, edge_index("T", NODES, "complete"))).abs().max() > bound


def test_difference_messages_see_only_differences_of_neighbours():
    messages = DifferenceMessages(5, 4)
    edges = edge_index("T", ("a", "b", "c"), [["a", "b"]])
    x = torch.randn(2, 3, 5)
    got = messages(x, edges)
    bound = rounding_bound(got, 2, 5)  # the MLP's two linears, of 5 and 4 terms
    assert (got[:, 0] - messages.mlp(x[:, 0] - x[:, 1])).abs().max() <= bound
    assert (got[:, 1] - messages.mlp(x[:, 1] - x[:, 0])).abs().max() <= bound
    assert torch.equal(got[:, 2], torch.zeros(2, 4))
    # x + 3 is rounded at |x + 3| <= 3 + max|x|: the inputs' rounding, and so the bound, grows by that factor
    offset = bound * (3 + x.abs().max().item()) / x.abs().max().item()
    assert (messages(x + 3.0, edges) - got).abs().max() <= offset, "a common offset does not move relative features"
