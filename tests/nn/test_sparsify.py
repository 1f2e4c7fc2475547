"""SMAUG token sparsification: the least-attended visible tokens leave the encoder mid-stack."""

import pytest
import torch

from mmmae.nn.blocks import Block
from mmmae.nn.encoder import Encoder
from mmmae.nn.sparsify import TokenSparsification, attention_received
from tests.float32_bound import rounding_bound


def test_attention_received_is_the_mean_attention_probability():
    torch.manual_seed(0)
    block = Block(8, heads=2)
    x = torch.randn(2, 5, 8)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    received = attention_received(block, x, mask)
    # each query spreads 1 over the keys: softmax's sum and the mean over 2 heads * 5 queries, of 5 terms each
    assert torch.allclose(received.sum(dim=1), torch.ones(2), atol=rounding_bound(torch.ones(1), 3, 10))
    assert (received[1, 3:] == 0).all()
    q, k, _ = block.attn.qkv(block.norm1(x[:1])).view(1, 5, 3, 2, 4).unbind(2)
    probs = torch.einsum("bqhd,bkhd->bhqk", q, k).mul(4 ** -0.5).softmax(-1)
    reference = probs.mean(dim=(1, 2))[0]  # norm (8 terms), qkv (8), scores (4), softmax (5), mean (10)
    assert (received[0] - reference).abs().max() <= rounding_bound(reference, 5, 10)


def test_select_keeps_the_most_attended_share_of_each_sample():
    torch.manual_seed(0)
    block = Block(8, heads=2)
    parts = {"video": torch.randn(3, 10, 8)}
    masks = {"video": torch.ones(3, 10, dtype=torch.bool)}
    masks["video"][2, 6:] = False  # padding: 6 tokens -> keep 3
    kept = TokenSparsification(after_layer=1, keep=0.5).select(block, parts, masks, joint=False)["video"]
    assert kept.sum(dim=1).tolist() == [5, 5, 3]
    assert not (kept & ~masks["video"]).any()
    score = attention_received(block, parts["video"], masks["video"])
    for row, keep in zip(score.masked_fill(~masks["video"], -1), kept):
        assert row[keep].min() >= row[~keep].max()


def encoder(**kwargs) -> Encoder:
    torch.manual_seed(0)
    return Encoder(["video", "text"], dim=16, depth=3, heads=2, **kwargs)


def test_kept_tokens_are_encoded_as_if_the_dropped_ones_were_never_there():
    enc = encoder(fusion="separate", sparsify=TokenSparsification(after_layer=1, keep=0.25))
    x = torch.randn(2, 8, 16)
    present = {"video": torch.ones(2, dtype=torch.bool)}
    out, masks = enc.train()({"video": x}, present)
    assert masks["video"].sum(dim=1).tolist() == [2, 2]
    assert not out["video"][~masks["video"]].any()
    for b in range(2):
        h = enc.blocks[0](x[b:b + 1])
        kept = h[:, masks["video"][b]]
        for block in enc.blocks[1:]:
            kept = block(kept)
        reference = enc.norm(kept)[0]  # 3 blocks and the norm; the longest sum, the MLP's 4 * 16 hidden units
        assert (out["video"][b][masks["video"][b]] - reference).abs().max() <= rounding_bound(reference, 4, 64)
    full, all_masks = enc.eval()({"video": x}, present)
    assert all_masks["video"].all() and full["video"].abs().sum(-1).gt(0).all()


def test_under_joint_fusion_the_context_modality_chooses_too():
    enc = encoder(fusion="joint", sparsify=TokenSparsification(after_layer=1, keep=0.5, modalities=["video"])).train()
    torch.manual_seed(1)
    parts = {"video": torch.randn(4, 8, 16), "text": torch.randn(4, 6, 16)}
    present = {m: torch.ones(4, dtype=torch.bool) for m in parts}
    _, masks = enc(parts, present)
    _, other = enc(dict(parts, text=torch.randn(4, 6, 16) * 3), present)
    assert masks["text"].all() and masks["video"].sum(dim=1).tolist() == [4] * 4
    assert not torch.equal(masks["video"], other["video"])


@pytest.mark.parametrize("kwargs, message", [
    (dict(sparsify=TokenSparsification(after_layer=3)),
     r"after_layer = 3: tokens can be dropped after shared block 1..2"),
    (dict(sparsify=TokenSparsification(after_layer=1, modalities=["audio"])), r"names \['audio'\]"),
])
def test_bad_sparsification_names_the_binding(kwargs, message):
    with pytest.raises(ValueError, match=message):
        encoder(**kwargs)


@pytest.mark.parametrize("kwargs, message", [(dict(after_layer=1, keep=1.0), "keep = 1.0"),
                                             (dict(after_layer=0), "after_layer = 0")])
def test_bad_shares_fail_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TokenSparsification(**kwargs)
