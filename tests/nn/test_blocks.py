import pytest
import torch

from mmmae.nn.blocks import Block, DropPath
from mmmae.nn.encoder import Encoder


def test_drop_path_zeroes_whole_samples_and_keeps_the_mean():
    torch.manual_seed(0)
    drop = DropPath(0.25).train()
    out = drop(torch.ones(4000, 3, 2))
    per_sample = out[:, 0, 0]
    assert per_sample.unique().tolist() == pytest.approx([0.0, 1 / 0.75])
    assert (out == per_sample[:, None, None]).all()
    assert abs(per_sample.mean().item() - 1.0) < 0.05


def test_drop_path_is_the_identity_in_eval_mode():
    x = torch.randn(5, 3)
    assert torch.equal(DropPath(0.5).eval()(x), x)


def test_drop_path_rejects_a_rate_of_one():
    with pytest.raises(ValueError, match="drop path rate"):
        DropPath(1.0)


def test_block_norm_eps_reaches_both_layer_norms():
    block = Block(8, 2, norm_eps=1e-12)
    assert block.norm1.eps == block.norm2.eps == 1e-12


def test_encoder_drop_path_rises_linearly_over_all_blocks():
    encoder = Encoder(["video", "audio"], dim=8, depth=4, heads=2, specific_layers=1, drop_path=0.3, norm_eps=1e-5)
    rates = [encoder.specific["video"][0].drop_path.rate] + [b.drop_path.rate for b in encoder.blocks]
    assert rates == pytest.approx([0.0, 0.1, 0.2, 0.3])
    assert encoder.norm.eps == 1e-5 and encoder.blocks[0].norm1.eps == 1e-5


def test_decoder_final_norm_eps_can_differ_from_its_blocks():
    from mmmae.nn.decoder import MaskTokenDecoder

    decoder = MaskTokenDecoder(8, 4, dim=8, depth=1, heads=2, norm_eps=1e-12, final_norm_eps=1e-5)
    assert decoder.transformer.blocks[0].norm1.eps == 1e-12 and decoder.transformer.norm.eps == 1e-5
