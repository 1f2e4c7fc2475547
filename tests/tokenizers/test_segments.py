"""SegmentEmbeddingTokenizer: projection plus 1-D positions, zero rows invalid, the input as target."""

import pytest
import torch

from mmmae.nn.pos_embed import sincos_pos_embed
from mmmae.tokenizers.segments import SegmentEmbeddingTokenizer


def test_tokens_shapes_valid_and_target():
    torch.manual_seed(0)
    tokenizer = SegmentEmbeddingTokenizer(dim=8, input_dim=6)
    segments = torch.randn(2, 5, 6)
    segments[1, 3:] = 0
    tokens = tokenizer(segments)
    assert tokens.embed.shape == (2, 5, 8) and tokens.grid == (5,) and tokenizer.target_dim == 6
    assert tokens.target is segments
    assert tokens.valid.tolist() == [[True] * 5, [True, True, True, False, False]]
    expected = tokenizer.proj(segments) + sincos_pos_embed((5,), 8)
    torch.testing.assert_close(tokens.embed, expected, atol=0, rtol=0)


def test_wrong_input_names_the_binding():
    with pytest.raises(ValueError, match=r"\(B, L, 6\) \(SegmentEmbeddingTokenizer.input_dim\), got \(2, 5, 4\)"):
        SegmentEmbeddingTokenizer(dim=8, input_dim=6)(torch.randn(2, 5, 4))
