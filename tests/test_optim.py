import torch
from torch import nn

from mmmae.optim import param_groups


class _WithTokens(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 4)
        self.norm = nn.LayerNorm(4)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, 4))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, 4))
        self.table = nn.Parameter(torch.zeros(9, 4))
        self.frozen = nn.Parameter(torch.zeros(4, 4), requires_grad=False)


def test_only_weight_matrices_decay():
    model = _WithTokens()
    decay, no_decay = param_groups(model, 0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    assert [names[id(p)] for p in decay["params"]] == ["proj.weight"] and decay["weight_decay"] == 0.05
    assert sorted(names[id(p)] for p in no_decay["params"]) == sorted(
        ["proj.bias", "norm.weight", "norm.bias", "mask_token", "cls_token", "table"])
    assert no_decay["weight_decay"] == 0.0
