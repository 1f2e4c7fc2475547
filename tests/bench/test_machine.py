"""The step's costs: FLOPs (CPU attention included), peak memory of a step, the matmul peak."""

import torch
import torch.nn.functional as F

from mmmae.bench.machine import matmul_peak, state_bytes, step_flops, step_peak_bytes, step_tensor_bytes


def test_step_flops_counts_a_linear_forward_and_backward():
    layer = torch.nn.Linear(32, 16)
    x = torch.randn(8, 32, requires_grad=True)
    flops = step_flops(lambda: layer(x).sum().backward())
    assert flops == 3 * 2 * 8 * 32 * 16  # forward, input gradient, weight gradient


def test_step_flops_counts_cpu_flash_attention_which_torch_leaves_out():
    q, k, v = (torch.randn(2, 3, 64, 16, requires_grad=True) for _ in range(3))
    forward = 2 * (2 * 2 * 3 * 64 * 64 * 16)  # q k^T and (attention) v
    assert step_flops(lambda: F.scaled_dot_product_attention(q, k, v)) == forward
    assert step_flops(lambda: F.scaled_dot_product_attention(q, k, v).sum().backward()) == forward + 2.5 * forward


def test_step_peak_bytes_sees_a_transient_allocation():
    def step():
        big = torch.ones(64 * 2**20 // 4)  # 64 MiB, freed on return
        big.add_(1.0)

    assert step_peak_bytes(step, torch.device("cpu")) >= 60 * 2**20
    assert step_peak_bytes(lambda: None, torch.device("cpu")) < 16 * 2**20


def test_step_tensor_bytes_counts_the_live_tensors_at_the_peak():
    layer = torch.nn.Linear(256, 256)  # 257 KiB of parameters, 257 KiB of gradients
    optimizer = torch.optim.AdamW(layer.parameters())
    mib = 2**20

    def step():
        big = torch.ones(mib)  # 4 MiB, freed before the backward pass
        del big
        layer(torch.randn(1024, 256)).sum().backward()  # 1 MiB input, 1 MiB output
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()
    peak = step_tensor_bytes(step, layer, optimizer)
    assert 4 * mib <= peak < 4 * mib + 64 * 1024  # the 4 MiB buffer; the rest never coexists with it
    assert step_tensor_bytes(lambda: None, layer, optimizer) == 0


def test_state_bytes_counts_parameters_and_adam_moments():
    layer = torch.nn.Linear(10, 10)  # 110 parameters
    optimizer = torch.optim.AdamW(layer.parameters())
    assert state_bytes(layer, optimizer) == 110 * 4
    layer(torch.randn(2, 10)).sum().backward()
    optimizer.step()
    assert state_bytes(layer, optimizer) >= 3 * 110 * 4


def test_matmul_peak_is_a_rate():
    assert 1e8 < matmul_peak(torch.device("cpu"), size=256, seconds=0.05) < 1e14
