"""op_time: a step's profiled time, split by op family."""

import torch
import torch.nn.functional as F

from mmmae.bench.op_time import FAMILIES, op_family, op_time


def test_ops_fall_into_their_families():
    assert op_family("aten::addmm") == op_family("aten::mm") == "matmul"
    assert op_family("aten::_scaled_dot_product_flash_attention_for_cpu_backward") == "attention"
    assert op_family("aten::mkldnn_convolution") == op_family("aten::convolution_backward") == "convolution"
    assert op_family("aten::_fused_adamw_") == "optimizer"
    assert op_family("aten::gelu") == op_family("aten::copy_") == "other"


def test_a_step_is_split_where_its_time_goes():
    q = torch.randn(1, 2, 512, 32, requires_grad=True)
    attention_only = op_time(lambda: F.scaled_dot_product_attention(q, q, q).sum().backward(), torch.device("cpu"))
    assert set(attention_only) == set(FAMILIES)
    assert attention_only["attention"] > 0 and attention_only["matmul"] == attention_only["convolution"] == 0
    a, b = torch.randn(512, 512), torch.randn(512, 512)
    matmul_only = op_time(lambda: torch.mm(a, b), torch.device("cpu"))
    assert matmul_only["matmul"] > 0 and matmul_only["attention"] == 0
