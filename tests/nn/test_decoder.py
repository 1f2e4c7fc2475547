"""The MAE mask-token decoder: predictions at exactly the requested token ids."""

import torch

from mmmae.nn.decoder import MaskTokenDecoder
from mmmae.types import MaskPlan


def decoder() -> MaskTokenDecoder:
    torch.manual_seed(0)
    return MaskTokenDecoder(in_dim=8, out_dim=5, dim=16, depth=1, heads=2).eval()


def test_predicts_one_row_per_requested_token_even_none():
    encoded = torch.randn(2, 3, 8)
    keep = torch.tensor([[0, 1, 2], [1, 2, 3]])
    for predict in (torch.tensor([[3, 5], [0, 4]]), torch.zeros(2, 0, dtype=torch.long)):
        assert decoder()(encoded, (6,), MaskPlan(keep, predict)).shape == (2, predict.shape[1], 5)


def test_queries_at_visible_positions_are_allowed():
    """VideoMAE V2 also asks for tokens the encoder saw: a query there is a mask token like any other."""
    dec, encoded, keep = decoder(), torch.randn(1, 2, 8), torch.tensor([[0, 1]])
    both = dec(encoded, (4,), MaskPlan(keep, torch.tensor([[1, 3]])))
    assert both.shape == (1, 2, 5) and not torch.allclose(both[0, 0], both[0, 1])


def test_token_shuffling_permutes_what_the_decoder_sees_not_where_it_predicts():
    """VideoPrism: the encoded tokens are permuted before their positions are added; the queries stay."""
    torch.manual_seed(0)
    shuffling = MaskTokenDecoder(in_dim=8, out_dim=5, dim=16, depth=1, heads=2, shuffle=True).eval()
    plain = MaskTokenDecoder(in_dim=8, out_dim=5, dim=16, depth=1, heads=2).eval()
    plain.load_state_dict(shuffling.state_dict())
    encoded, plan = torch.randn(2, 3, 8), MaskPlan(torch.tensor([[0, 1, 2], [1, 2, 3]]), torch.tensor([[3, 5], [0, 4]]))
    torch.manual_seed(1)
    order = torch.rand(2, 3).argsort(dim=1)
    torch.manual_seed(1)
    shuffled = shuffling(encoded, (6,), plan)
    # the same as the plain decoder given the encoded tokens in that order, at the same positions and queries
    expected = plain(torch.stack([encoded[b, order[b]] for b in range(2)]), (6,), plan)
    torch.testing.assert_close(shuffled, expected, rtol=0, atol=0)
    assert not torch.allclose(shuffled, plain(encoded, (6,), plan))
