"""Flow tokenizer: tokens and targets against a hand computation from the flow fields."""

import pytest
import torch

from mmmae.nn.pos_embed import position_table
from mmmae.tokenizers.flow import FlowTokenizer
from tests.float32_bound import rounding_bound


def test_flow_tokens_are_the_normalised_fields_cut_into_tubelets():
    torch.manual_seed(0)
    flow = 6 * torch.randn(2, 2, 4, 8, 12)  # some values beyond scale x clip = 8 pixels per frame
    tokenizer = FlowTokenizer(dim=16, tubelet=2, patch=4, scale=4.0, clip=2.0)
    tokens = tokenizer(flow)
    assert tokens.grid == (2, 2, 3) and tokenizer.target_dim == 2 * 2 * 4 * 4
    assert tokens.embed.shape == (2, 12, 16) and tokens.target.shape == (2, 12, 64)
    normalised = (flow / 4.0).clamp(-2.0, 2.0)
    assert normalised.abs().max() == 2.0  # the clip took effect
    # token (t'=1, h'=1, w'=2) -> index 1*6 + 1*3 + 2 = 11; values laid out (p0 p1 p2) c
    cube = normalised[1, :, 2:4, 4:8, 8:12]  # (2, 2, 4, 4)
    assert torch.equal(tokens.target[1, 11], cube.permute(1, 2, 3, 0).reshape(-1))
    weight, bias = tokenizer.proj.weight, tokenizer.proj.bias  # (16, 2, 2, 4, 4), (16,)
    position = position_table("joint", 16, None, owner="test")((2, 2, 3), flow.device)[11]
    expected = torch.einsum("dcthw,cthw->d", weight, cube) + bias + position
    assert torch.allclose(tokens.embed[1, 11], expected, atol=rounding_bound(expected, 2, cube.numel()), rtol=0)


def test_flow_tokenizer_names_a_bad_input_and_bad_settings():
    with pytest.raises(ValueError, match=r"expects flow \(B, 2, T, H, W\), got \(1, 3, 2, 4, 4\)"):
        FlowTokenizer(dim=8, patch=4)(torch.zeros(1, 3, 2, 4, 4))
    with pytest.raises(ValueError, match="scale > 0 and clip > 0"):
        FlowTokenizer(dim=8, scale=0.0)
    assert FlowTokenizer(dim=8, patch=4).figure_image(torch.zeros(1, 2, 2, 4, 4)) is None
