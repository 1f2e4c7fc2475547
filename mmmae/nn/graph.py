"""Message passing over a small graph of named nodes (body-worn devices), dense in time.

A graph is a (2, E) long tensor of directed edges (source row 0, target row 1) over nodes
0..V-1; an undirected edge appears once each way. Node features are (..., V, D): any
leading axes (batch, time) share the graph. Every layer is equivariant to a relabelling
of the nodes that maps the edge set onto itself.
"""

from collections.abc import Sequence

import torch
from torch import nn


def edge_index(owner: str, nodes: Sequence[str], adjacency: str | Sequence[Sequence[str]]) -> torch.Tensor:
    """'complete' or undirected [name_a, name_b] pairs -> (2, E) directed edges, both ways.

    A ValueError names the unknown node, a self-loop or an edge that is not a pair.
    """
    index = {name: i for i, name in enumerate(nodes)}
    if isinstance(adjacency, str):
        if adjacency != "complete":
            raise ValueError(
                f"{owner}.adjacency = {adjacency!r}: expected 'complete' or a list of [name_a, name_b] edges"
            )
        pairs = {(i, j) for i in range(len(nodes)) for j in range(len(nodes)) if i != j}
    else:
        pairs = set()
        for edge in adjacency:
            if isinstance(edge, str) or len(edge) != 2:
                raise ValueError(f"{owner}.adjacency: edge {edge!r} is not a pair [name_a, name_b]")
            unknown = [name for name in edge if name not in index]
            if unknown:
                raise ValueError(
                    f"{owner}.adjacency: edge {list(edge)} names unknown {unknown}; nodes are {list(nodes)}"
                )
            a, b = index[edge[0]], index[edge[1]]
            if a == b:
                raise ValueError(f"{owner}.adjacency: edge {list(edge)} is a self-loop")
            pairs |= {(a, b), (b, a)}
    return torch.tensor(sorted(pairs), dtype=torch.long).reshape(-1, 2).T.contiguous()


def neighbour_mean(messages: torch.Tensor, edges: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """Messages on edges (..., E, D) -> their mean at each edge's target node (..., V, D).

    A node without neighbours gets zeros.
    """
    target = edges[1]
    total = messages.new_zeros(*messages.shape[:-2], num_nodes, messages.shape[-1])
    total = total.index_add(-2, target, messages)
    degree = torch.bincount(target, minlength=num_nodes).clamp_min(1).to(messages.dtype)
    return total / degree[:, None]


def two_layer_mlp(in_dim: int, dim: int) -> nn.Sequential:
    """Linear -> GELU -> Linear: (..., in_dim) -> (..., dim)."""
    return nn.Sequential(nn.Linear(in_dim, dim), nn.GELU(), nn.Linear(dim, dim))


class GraphLayer(nn.Module):
    """GIN-style update with weights shared by all nodes: h_i + MLP(LN(h_i + mean_{j in N(i)} h_j))."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = two_layer_mlp(dim, dim)

    def forward(self, nodes: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
        """nodes (..., V, D), edges (2, E) -> (..., V, D)."""
        neighbours = neighbour_mean(nodes.index_select(-2, edges[0]), edges, nodes.shape[-2])
        return nodes + self.mlp(self.norm(nodes + neighbours))


class DifferenceMessages(nn.Module):
    """Relative features between connected nodes: mean_{j in N(i)} MLP(x_i - x_j), one shared MLP.

    x (..., V, F) node signals of equal size F -> (..., V, dim). No normalisation before the
    MLP: the size of a difference is the information.
    """

    def __init__(self, in_dim: int, dim: int):
        super().__init__()
        self.mlp = two_layer_mlp(in_dim, dim)

    def forward(self, signals: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
        source, target = signals.index_select(-2, edges[0]), signals.index_select(-2, edges[1])
        relative = (target - source).to(self.mlp[0].weight.dtype)  # raw signals: to bf16 parameters under FSDP
        return neighbour_mean(self.mlp(relative), edges, signals.shape[-2])
