"""Graph helpers: edge lists, neighbour means against hand sums, equivariance, errors."""

import pytest
import torch

from mmmae.nn.graph import DifferenceMessages, GraphLayer, edge_index, neighbour_mean

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
    assert torch.allclose(got, expected, atol=1e-6)


def test_graph_layer_is_equivariant_to_relabelling_nodes():
    layer = GraphLayer(8)
    chain = [["a", "b"], ["b", "c"], ["c", "d"]]
    order = ("c", "a", "d", "b")
    perm = torch.tensor([NODES.index(n) for n in order])
    x = torch.randn(2, 3, 4, 8)
    out = layer(x, edge_index("T", NODES, chain))
    out_permuted = layer(x[:, :, perm], edge_index("T", order, chain))
    assert torch.allclose(out[:, :, perm], out_permuted, atol=1e-5)
    assert not torch.allclose(out, layer(x, edge_index("T", NODES, "complete")), atol=1e-3)


def test_difference_messages_see_only_differences_of_neighbours():
    messages = DifferenceMessages(5, 4)
    edges = edge_index("T", ("a", "b", "c"), [["a", "b"]])
    x = torch.randn(2, 3, 5)
    got = messages(x, edges)
    assert torch.allclose(got[:, 0], messages.mlp(x[:, 0] - x[:, 1]), atol=1e-6)
    assert torch.allclose(got[:, 1], messages.mlp(x[:, 1] - x[:, 0]), atol=1e-6)
    assert torch.equal(got[:, 2], torch.zeros(2, 4))
    assert torch.allclose(messages(x + 3.0, edges), got, atol=1e-5), "a common offset does not move relative features"
