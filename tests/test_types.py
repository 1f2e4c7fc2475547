"""gather_tokens (index_select over rows) against torch.gather, values and gradients."""

import torch

from mmmae.types import gather_tokens


def test_gather_tokens_matches_torch_gather_and_its_gradient():
    torch.manual_seed(0)
    x = torch.randn(3, 7, 5, requires_grad=True)
    index = torch.stack([torch.randperm(7)[:4].sort().values for _ in range(3)])
    got = gather_tokens(x, index)
    want = torch.gather(x, 1, index[..., None].expand(-1, -1, 5))
    assert torch.equal(got, want)
    weight = torch.randn_like(got)
    (grad,) = torch.autograd.grad((got * weight).sum(), x)
    (grad_ref,) = torch.autograd.grad((want * weight).sum(), x)
    assert torch.equal(grad, grad_ref)


def test_gather_tokens_takes_rows_of_any_trailing_shape():
    x = torch.arange(2 * 4 * 3 * 2).view(2, 4, 3, 2)
    index = torch.tensor([[3, 0], [1, 2]])
    assert torch.equal(gather_tokens(x, index), torch.stack([x[0, [3, 0]], x[1, [1, 2]]]))
    ids = torch.arange(8).view(2, 4)
    assert torch.equal(gather_tokens(ids, index), torch.tensor([[3, 0], [5, 6]]))
