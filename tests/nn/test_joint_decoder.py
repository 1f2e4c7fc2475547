"""Shared and joint decoders: shapes, what each modality's predictions depend on."""

from types import SimpleNamespace

import pytest
import torch

from mmmae.nn.joint_decoder import JointDecoder
from mmmae.nn.shared_decoder import SharedDecoder
from mmmae.types import MaskPlan, Tokens
from tests.float32_bound import rounding_bound


def modalities():
    spec = {"video": 12, "audio": 7}
    return {m: SimpleNamespace(tokenizer=SimpleNamespace(dim=16, target_dim=p), target_dim=p) for m, p in spec.items()}


def inputs(batch=2):
    g = torch.Generator().manual_seed(0)
    grids = {"video": (2, 2, 2), "audio": (3, 2)}
    tokens = {m: Tokens(torch.zeros(batch, int(torch.tensor(grid).prod()), 16), None, grid)
              for m, grid in grids.items()}
    plans = {"video": MaskPlan(keep=torch.tensor([[0, 5]] * batch), predict=torch.tensor([[1, 2, 3, 4, 6, 7]] * batch)),
             "audio": MaskPlan(keep=torch.tensor([[1, 2, 4]] * batch), predict=torch.tensor([[0, 3, 5]] * batch))}
    encoded = {m: torch.randn(batch, p.keep.shape[1], 16, generator=g) for m, p in plans.items()}
    present = {m: torch.ones(batch, dtype=torch.bool) for m in grids}
    return encoded, tokens, plans, present


def depends(decoder, target: str, source: str) -> bool:
    encoded, tokens, plans, present = inputs()
    before = decoder(encoded, tokens, plans, present)[target]
    changed = dict(encoded, **{source: encoded[source].flip(0)})
    # above rounding: the embedding, a block, the norm and the head, sums of at most 4 * 8 hidden units
    return (before - decoder(changed, tokens, plans, present)[target]).abs().max() > rounding_bound(before, 4, 32)


@pytest.mark.parametrize("make", [
    lambda: SharedDecoder(modalities(), dim=8, depth=1, heads=2),
    lambda: JointDecoder(modalities(), dim=8, depth=1, heads=2),
    lambda: JointDecoder(modalities(), dim=8, depth=1, heads=2, cross_modal=True),
])
def test_prediction_shapes(make):
    out = make()(*inputs())
    assert out["video"].shape == (2, 6, 12) and out["audio"].shape == (2, 3, 7)


def test_shared_decoder_decodes_each_modality_alone():
    decoder = SharedDecoder(modalities(), dim=8, depth=1, heads=2)
    assert depends(decoder, "video", "video") and not depends(decoder, "video", "audio")


def test_joint_decoder_mixes_modalities():
    decoder = JointDecoder(modalities(), dim=8, depth=1, heads=2)
    assert depends(decoder, "video", "video") and depends(decoder, "video", "audio")


def test_cross_modal_decoder_predicts_each_modality_from_the_others_only():
    decoder = JointDecoder(modalities(), dim=8, depth=1, heads=2, cross_modal=True)
    assert not depends(decoder, "video", "video") and depends(decoder, "video", "audio")
    assert not depends(decoder, "audio", "audio") and depends(decoder, "audio", "video")


def test_joint_decoder_ignores_absent_modality():
    decoder = JointDecoder(modalities(), dim=8, depth=1, heads=2)
    encoded, tokens, plans, present = inputs()
    present["audio"] = torch.tensor([False, True])
    before = decoder(encoded, tokens, plans, present)["video"]
    changed = dict(encoded, audio=encoded["audio"] * 3)
    after = decoder(changed, tokens, plans, present)["video"]
    assert torch.allclose(before[0], after[0]) and not torch.allclose(before[1], after[1])


def test_widths_must_agree():
    mods = modalities()
    mods["audio"].tokenizer.dim = 32
    with pytest.raises(ValueError, match="widths differ"):
        SharedDecoder(mods, dim=8, depth=1, heads=2)
