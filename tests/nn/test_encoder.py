"""Fusion strategies: which modality's tokens reach which, absent modalities, specific layers."""

import pytest
import torch

from mmmae.nn.encoder import Encoder


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
    return not torch.allclose(before, after, atol=1e-6)


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
        assert torch.allclose(out[m], enc.norm(x), atol=1e-5)


def test_joint_fusion_ignores_an_absent_modality():
    enc = encoder(fusion="joint")
    parts, present = inputs()
    present["audio"] = torch.tensor([True, False, True])
    out, _ = enc(parts, present)
    alone = enc({"video": parts["video"][1:2]}, {"video": torch.ones(1, dtype=torch.bool)})[0]["video"]
    assert torch.allclose(out["video"][1], alone[0], atol=1e-5)
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
