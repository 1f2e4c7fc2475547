import torch
from torch import nn

from mmmae.optim import param_groups
from tests.float32_bound import rounding_bound


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


def test_build_optimizer_is_fused_adamw_with_the_for_loop_result():
    from mmmae.optim import build_optimizer

    torch.manual_seed(0)
    fused_model = _WithTokens()
    loop_model = _WithTokens()
    loop_model.load_state_dict(fused_model.state_dict())
    fused, _ = build_optimizer(fused_model, 1e-2, 0.05, (0.9, 0.95), steps=10, warmup_steps=0, min_lr_ratio=0.0)
    assert fused.defaults["fused"] is True
    loop = torch.optim.AdamW(param_groups(loop_model, 0.05), lr=1e-2, betas=(0.9, 0.95), foreach=False)
    x = torch.randn(8, 4)
    for _ in range(3):
        for model, optimizer in ((fused_model, fused), (loop_model, loop)):
            (model.norm(model.proj(x)) + model.mask_token + model.table[:1]).pow(2).sum().backward()
            optimizer.step()
            optimizer.zero_grad()
    # 3 steps of about 10 roundings each (moments, bias corrections, sqrt, division, decay), at the size of the
    # weight or of its step (at most the lr)
    for (name, a), b in zip(fused_model.named_parameters(), loop_model.parameters()):
        assert (a - b).abs().max() <= rounding_bound(b.abs() + 1e-2, 3, 10), name
    assert not torch.equal(fused_model.proj.weight, _WithTokens().proj.weight)
