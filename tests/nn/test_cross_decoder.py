"""The cross-view decoder: shapes, what its predictions depend on, gradients, and the siamese model."""

from functools import partial
from types import SimpleNamespace

import pytest
import torch

from mmmae.masking.none import NoMasking
from mmmae.masking.random import RandomMasking
from mmmae.masking.rng import MaskRNG
from mmmae.model import MaskedAutoencoder, Modality
from mmmae.nn.cross_decoder import CrossViewDecoder
from mmmae.nn.encoder import Encoder
from mmmae.objectives.reconstruction import Reconstruction
from mmmae.tokenizers.frames import FrameTokenizer
from mmmae.types import MaskPlan, Tokens
from tests.float32_bound import rounding_bound

GRID = (1, 3, 3)


def rounding(reference: torch.Tensor) -> float:
    """The decoder's float32 rounding bound: the embedding, 2 blocks, the norm and the head; the
    longest sum, the MLP's 4 * 8 hidden units (keys: at most 9 + 9 tokens; the 16 inputs)."""
    return rounding_bound(reference, 5, 32)


def modalities(width: int = 16):
    return {"view1": SimpleNamespace(tokenizer=SimpleNamespace(dim=16, target_dim=12), target_dim=12),
            "view2": SimpleNamespace(tokenizer=SimpleNamespace(dim=width, target_dim=5), target_dim=5)}


def decoder(**kwargs) -> CrossViewDecoder:
    torch.manual_seed(0)
    return CrossViewDecoder(modalities(), **{"dim": 8, "depth": 2, "heads": 2, **kwargs}).eval()


def inputs(batch: int = 2, predict=(0, 2, 3, 5, 6, 8)):
    g = torch.Generator().manual_seed(0)
    keep = [i for i in range(9) if i not in predict]
    tokens = {m: Tokens(torch.zeros(batch, 9, 16), None, GRID) for m in ("view1", "view2")}
    plans = {"view1": MaskPlan(keep=torch.arange(9).repeat(batch, 1), predict=torch.zeros(batch, 0, dtype=torch.long)),
             "view2": MaskPlan(keep=torch.tensor([keep] * batch), predict=torch.tensor([list(predict)] * batch))}
    encoded = {m: torch.randn(batch, p.keep.shape[1], 16, generator=g) for m, p in plans.items()}
    present = {m: torch.ones(batch, dtype=torch.bool) for m in plans}
    return encoded, tokens, plans, present


def test_predicts_the_target_only_at_its_predict_indices():
    out = decoder()(*inputs())
    assert set(out) == {"view2"} and out["view2"].shape == (2, 6, 5)


def test_nothing_to_predict_gives_an_empty_prediction():
    assert decoder()(*inputs(predict=()))["view2"].shape == (2, 0, 5)


def test_prediction_depends_on_the_context_view_and_on_the_visible_target_tokens():
    dec = decoder()
    encoded, tokens, plans, present = inputs()
    before = dec(encoded, tokens, plans, present)["view2"]
    for view in ("view1", "view2"):
        changed = dict(encoded, **{view: encoded[view] + torch.randn_like(encoded[view])})
        assert (before - dec(changed, tokens, plans, present)["view2"]).abs().max() > rounding(before), view


def test_context_is_a_set_its_token_order_does_not_matter():
    """The context carries its positions from the encoder; the decoder cross-attends to it as a set."""
    dec = decoder()
    encoded, tokens, plans, present = inputs()
    order = torch.randperm(9, generator=torch.Generator().manual_seed(1))
    shuffled = dict(encoded, view1=encoded["view1"][:, order])
    reference = dec(encoded, tokens, plans, present)["view2"]
    torch.testing.assert_close(dec(shuffled, tokens, plans, present)["view2"], reference, atol=rounding(reference),
                               rtol=0)


def test_a_token_s_prediction_does_not_depend_on_which_others_are_asked_for():
    dec = decoder()
    encoded, tokens, plans, present = inputs()
    full = dec(encoded, tokens, plans, present)["view2"]
    subset = dict(plans, view2=MaskPlan(keep=plans["view2"].keep, predict=torch.tensor([[2, 6]] * 2)))
    torch.testing.assert_close(dec(encoded, tokens, subset, present)["view2"], full[:, [1, 4]], atol=rounding(full),
                               rtol=0)


def test_samples_are_decoded_independently():
    dec = decoder()
    encoded, tokens, plans, present = inputs()
    full = dec(encoded, tokens, plans, present)["view2"]
    first = {m: e[:1] for m, e in encoded.items()}
    first_plans = {m: MaskPlan(keep=p.keep[:1], predict=p.predict[:1]) for m, p in plans.items()}
    torch.testing.assert_close(dec(first, tokens, first_plans, present)["view2"], full[:1], atol=rounding(full), rtol=0)


def test_gradient_reaches_both_views_encodings():
    encoded, tokens, plans, present = inputs()
    encoded = {m: e.requires_grad_() for m, e in encoded.items()}
    decoder()(encoded, tokens, plans, present)["view2"].square().sum().backward()
    assert encoded["view1"].grad.abs().sum() > 0 and encoded["view2"].grad.abs().sum() > 0


def test_dropout_acts_in_training_only():
    dec = decoder(dropout=0.5)
    args = inputs()
    assert torch.equal(dec(*args)["view2"], dec(*args)["view2"])
    dec.train()
    assert not torch.equal(dec(*args)["view2"], dec(*args)["view2"])


@pytest.mark.parametrize("kwargs, message", [
    (dict(context="video"), r"CrossViewDecoder.context = 'video' is not a modality"),
    (dict(target="view1"), r"context and target are both 'view1'"),
])
def test_bad_bindings_fail_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CrossViewDecoder(modalities(), dim=8, depth=1, heads=2, **kwargs)


def test_views_of_different_widths_are_refused():
    with pytest.raises(ValueError, match="token widths of 'view1' and 'view2' differ"):
        CrossViewDecoder(modalities(width=8), dim=8, depth=1, heads=2)


def test_siamese_model_reconstructs_view2_from_view1():
    """The SiamMAE composition: view1 unmasked (no prediction), view2 masked, one separate-fusion encoder."""
    torch.manual_seed(0)
    views = [Modality("view1", FrameTokenizer(dim=16, patch=4), NoMasking()),
             Modality("view2", FrameTokenizer(dim=16, patch=4), RandomMasking(0.75))]
    model = MaskedAutoencoder(views, partial(Encoder, dim=16, depth=1, heads=2, fusion="separate"),
                              [Reconstruction("view2")], partial(CrossViewDecoder, dim=8, depth=1, heads=2))
    batch = {"view1": torch.rand(2, 3, 1, 16, 16), "view2": torch.rand(2, 3, 1, 16, 16)}
    out = model(batch, MaskRNG.seeded(0))
    assert out.outputs["view1"].prediction is None and out.outputs["view1"].encoded.shape == (2, 16, 16)
    assert out.outputs["view2"].encoded.shape == (2, 4, 16) and out.outputs["view2"].prediction.shape == (2, 12, 48)
    out.loss.backward()
    for name in ("view1", "view2"):
        assert model.modalities[name].tokenizer.proj.weight.grad.abs().sum() > 0, name
    changed = dict(batch, view1=torch.rand(2, 3, 1, 16, 16))
    with torch.no_grad():
        again = model(batch, MaskRNG.seeded(0)).outputs["view2"].prediction
        other = model(changed, MaskRNG.seeded(0)).outputs["view2"].prediction
    assert not torch.allclose(again, other)
