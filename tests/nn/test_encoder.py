"""Fusion strategies: which modality's tokens reach which, absent modalities, specific layers,
and the dense path taken when every token takes part."""

import pytest
import torch

from mmmae.nn.encoder import Encoder
from mmmae.nn.packing import PackedLayout
from mmmae.nn.sparsify import TokenSparsification
from tests.float32_bound import rounding_bound

# rounding bounds of the encoder below: 3 blocks and the norm; the longest sum, the MLP's 4 * 16 hidden units
STAGES, TERMS = 3 + 1, 4 * 16


def inputs(batch=3):
    g = torch.Generator().manual_seed(0)
    parts = {"video": torch.randn(batch, 5, 16, generator=g), "audio": torch.randn(batch, 3, 16, generator=g)}
    present = {m: torch.ones(batch, dtype=torch.bool) for m in parts}
    return parts, present


def encoder(**kwargs):
    torch.manual_seed(0)
    return Encoder(["video", "audio"], dim=16, depth=3, heads=2, **kwargs).eval()


def audio_changes_video(enc) -> bool:
    parts, present = inputs()
    before = enc(parts, present)[0]["video"]
    after = enc(dict(parts, audio=parts["audio"].flip(0)), present)[0]["video"]
    return (before - after).abs().max() > rounding_bound(before, STAGES, TERMS)


@pytest.mark.parametrize("kwargs, mixes", [
    (dict(fusion="separate"), False),
    (dict(fusion="joint"), True),
    (dict(fusion="mid", fusion_layers=1), True),
    (dict(fusion="joint", specific_layers=3), False),
    (dict(fusion="joint", specific_layers=2), True),
])
def test_which_fusions_let_modalities_attend_to_each_other(kwargs, mixes):
    assert audio_changes_video(encoder(**kwargs)) == mixes


def test_separate_fusion_equals_the_transformer_on_each_modality_alone():
    enc = encoder(fusion="separate")
    parts, present = inputs()
    out, _ = enc(parts, present)
    for m, x in parts.items():
        for block in enc.blocks:
            x = block(x)
        reference = enc.norm(x)
        assert (out[m] - reference).abs().max() <= rounding_bound(reference, STAGES, TERMS)


def test_joint_fusion_ignores_an_absent_modality():
    enc = encoder(fusion="joint")
    parts, present = inputs()
    present["audio"] = torch.tensor([True, False, True])
    out, _ = enc(parts, present)
    alone = enc({"video": parts["video"][1:2]}, {"video": torch.ones(1, dtype=torch.bool)})[0]["video"]
    assert (out["video"][1] - alone[0]).abs().max() <= rounding_bound(alone, STAGES, TERMS)
    assert not out["audio"][1].any()
    assert not torch.allclose(out["video"][0], enc({"video": parts["video"][:1]},
                                                   {"video": torch.ones(1, dtype=torch.bool)})[0]["video"][0])


@pytest.mark.parametrize("kwargs", [dict(specific_layers=2), dict(shared_layers=1)])
def test_specific_layers_have_weights_per_modality(kwargs):
    enc = encoder(**kwargs)
    assert len(enc.blocks) == 1 and set(enc.specific) == {"video", "audio"}
    assert enc.specific["video"][0].attn.qkv.weight is not enc.specific["audio"][0].attn.qkv.weight


@pytest.mark.parametrize("kwargs, message", [
    (dict(fusion="late"), "not one of"),
    (dict(fusion="mid", fusion_layers=0), "fusion_layers"),
    (dict(fusion="mid", fusion_layers=2, specific_layers=2), "fusion_layers"),
    (dict(specific_layers=4), "specific_layers"),
    (dict(shared_layers=4), "shared_layers"),
    (dict(shared_layers=1, specific_layers=1), "shared_layers"),
])
def test_bad_fusion_settings_name_the_binding(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Encoder(["video"], dim=16, depth=3, heads=2, **kwargs)


def outputs_and_gradients(enc, present):
    """The encodings and the gradients of a loss on them for the inputs and every parameter."""
    parts = {m: x.requires_grad_() for m, x in inputs()[0].items()}
    out, masks = enc(parts, present)
    loss = sum(x.sin().sum() for x in out.values())
    grads = torch.autograd.grad(loss, [*parts.values(), *enc.parameters()])
    return out, masks, grads


@pytest.mark.parametrize("kwargs", [
    dict(fusion="separate"),
    dict(fusion="joint"),
    dict(fusion="mid", fusion_layers=1),
    dict(fusion="joint", specific_layers=1),
    dict(fusion="mid", fusion_layers=1, specific_layers=1),
])
def test_the_dense_path_equals_the_packed_one(kwargs):
    enc = encoder(**kwargs).train()
    parts, everyone = inputs()  # all-True present tensors force the packed path
    dense, dense_masks, dense_grads = outputs_and_gradients(enc, {m: None for m in parts})
    packed, packed_masks, packed_grads = outputs_and_gradients(enc, everyone)
    for m in parts:
        torch.testing.assert_close(dense[m], packed[m], atol=rounding_bound(dense[m], STAGES, TERMS), rtol=0)
        assert dense_masks[m].dtype == torch.bool and torch.equal(dense_masks[m], packed_masks[m])
    for dense_grad, packed_grad in zip(dense_grads, packed_grads, strict=True):  # forward, then backward
        torch.testing.assert_close(dense_grad, packed_grad, atol=rounding_bound(dense_grad, 2 * STAGES, TERMS), rtol=0)


def test_the_dense_path_builds_no_packed_layout(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a packed layout (a host copy of the masks) for a batch without absences or padding")

    monkeypatch.setattr(PackedLayout, "__init__", refuse)
    enc = encoder(fusion="mid", fusion_layers=1)
    parts, present = inputs()
    out, masks = enc(parts, {m: None for m in parts})
    assert {m: x.shape for m, x in out.items()} == {m: x.shape for m, x in parts.items()}
    assert all(mask.all() and mask.shape == parts[m].shape[:2] for m, mask in masks.items())
    with pytest.raises(AssertionError, match="packed layout"):
        enc(parts, present)


def test_padding_and_sparsification_still_pack_without_presence_flags():
    parts, _ = inputs()
    valid = {"video": torch.tensor([[True] * 5, [True] * 3 + [False] * 2, [True] * 4 + [False]]), "audio": None}
    out, masks = encoder(fusion="joint")(parts, {m: None for m in parts}, valid)
    assert torch.equal(masks["video"], valid["video"]) and masks["audio"].all()
    assert not out["video"][~valid["video"]].any()
    sparse = encoder(fusion="joint", sparsify=TokenSparsification(after_layer=1, keep=0.5)).train()
    assert sparse(parts, {m: None for m in parts})[1]["video"].sum(dim=1).tolist() == [2, 2, 2]


@pytest.mark.parametrize("kwargs", [dict(), dict(fusion="mid", fusion_layers=1, specific_layers=1)])
def test_the_tokens_after_a_block_are_the_first_blocks_without_the_norm(kwargs):
    enc, (parts, _) = encoder(**kwargs), inputs()
    for blocks in (1, 2, 3):
        got, _ = enc(parts, {m: None for m in parts}, blocks=blocks)
        x = dict(parts)
        for i in range(blocks):
            if i < enc.specific_depth:
                x = {m: enc.specific[m][i](v) for m, v in x.items()}
            elif i - enc.specific_depth < enc.joint_from:
                x = {m: enc.blocks[i - enc.specific_depth](v) for m, v in x.items()}
            else:
                joint = enc.blocks[i - enc.specific_depth](torch.cat(list(x.values()), dim=1))
                x = dict(zip(x, joint.split([5, 3], dim=1)))
        for m in parts:
            torch.testing.assert_close(got[m], x[m], rtol=0, atol=0)
    full, _ = enc(parts, {m: None for m in parts})
    assert torch.equal(full["video"], enc(parts, {m: None for m in parts})[0]["video"])
    with pytest.raises(ValueError, match=r"the tokens after block 4: the encoder has blocks 1..3"):
        enc(parts, {m: None for m in parts}, blocks=4)
