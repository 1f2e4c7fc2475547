"""SiamMCVAE's variational decoder: the KL term, which frame the prior and the posterior see, and sampling."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from mmmae.config import parse_config
from mmmae.generate import fill
from mmmae.masking.rng import MaskRNG
from mmmae.model import MaskedAutoencoder
from mmmae.nn.variational_decoder import VariationalDecoder
from mmmae.objectives.weight_ramp import LinearRamp
from mmmae.types import Decoded, MaskPlan, Tokens

GRID = (1, 3, 3)
PREDICT = (0, 2, 3, 5, 6, 8)
LATENT = 4
EPS = torch.finfo(torch.float32).eps
MICRO = str(Path(__file__).parents[1] / "fixtures" / "micro_overrides.gin")


def decoder(**kwargs) -> VariationalDecoder:
    torch.manual_seed(0)
    modalities = {m: SimpleNamespace(tokenizer=SimpleNamespace(dim=16), target_dim=5) for m in ("view1", "view2")}
    return VariationalDecoder(modalities, **{"dim": 8, "depth": 2, "heads": 2, "latent": LATENT, **kwargs}).eval()


def inputs(batch: int = 2):
    """Past (view1, all 9 tokens encoded) and future (view2: 3 tokens encoded, PREDICT hidden)."""
    g = torch.Generator().manual_seed(0)
    keep = [i for i in range(9) if i not in PREDICT]
    tokens = {m: Tokens(torch.zeros(batch, 9, 16), torch.randn(batch, 9, 5, generator=g), GRID)
              for m in ("view1", "view2")}
    plans = {"view1": MaskPlan(keep=torch.arange(9).repeat(batch, 1), predict=torch.zeros(batch, 0, dtype=torch.long)),
             "view2": MaskPlan(keep=torch.tensor([keep] * batch), predict=torch.tensor([list(PREDICT)] * batch))}
    encoded = {m: torch.randn(batch, p.keep.shape[1], 16, generator=g) for m, p in plans.items()}
    present = {m: torch.ones(batch, dtype=torch.bool) for m in plans}
    return encoded, tokens, plans, present


def with_hidden_future_changed(tokens: dict) -> dict:
    """The future frame's targets changed at its hidden tokens only."""
    target = tokens["view2"].target.clone()
    target[:, list(PREDICT)] += 1.0
    return {**tokens, "view2": Tokens(tokens["view2"].embed, target, GRID)}


def sample(dec: VariationalDecoder, inputs_, seed: int, **settings) -> torch.Tensor:
    return dec.sample(*inputs_, generator=torch.Generator().manual_seed(seed), **settings)["view2"]


def test_forward_returns_the_prediction_and_a_per_sample_kl():
    out = decoder()(*inputs())
    assert set(out) == {"view2"} and isinstance(out["view2"], Decoded)
    assert out["view2"].prediction.shape == (2, len(PREDICT), 5) and out["view2"].target is None
    assert set(out["view2"].terms) == {"kl"} and out["view2"].terms["kl"].shape == (2,)


def test_the_kl_is_the_gaussian_kl_of_posterior_and_prior_by_hand():
    dec = decoder()
    encoded, tokens, plans, present = inputs()
    q, p = dec.posterior_of(encoded, tokens), dec.prior_of(encoded)
    var_q, var_p = q.stddev ** 2, p.stddev ** 2
    parts = [torch.log(var_p), -torch.log(var_q), var_q / var_p, (q.mean - p.mean) ** 2 / var_p,
             -torch.ones_like(var_p)]
    by_hand = 0.5 * sum(parts).sum(-1)
    # float32 rounding of each of the 5 parts and of the sum over the latent, relative to their magnitudes
    bound = 16 * EPS * 0.5 * sum(part.abs() for part in parts).sum(-1)
    kl = dec(encoded, tokens, plans, present)["view2"].terms["kl"]
    assert (by_hand > 0).all()
    assert ((kl - by_hand).abs() <= bound).all(), (kl, by_hand, bound)


def test_free_bits_count_each_dimension_as_at_least_that_many_nats():
    dec = decoder()
    encoded, tokens, plans, present = inputs()
    q, p = dec.posterior_of(encoded, tokens), dec.prior_of(encoded)
    per_dimension = torch.distributions.kl_divergence(q, p)  # (B, latent)
    floor = per_dimension.median().item()  # some dimensions below it, some above
    kl = decoder(free_bits=floor)(encoded, tokens, plans, present)["view2"].terms["kl"]
    assert torch.equal(kl, per_dimension.clamp_min(floor).sum(-1))
    assert (kl >= per_dimension.sum(-1)).all() and (kl > per_dimension.sum(-1)).any()
    with pytest.raises(ValueError, match="VariationalDecoder.free_bits = -1"):
        decoder(free_bits=-1)


def test_the_prior_never_sees_the_future_frame_and_the_posterior_does():
    dec = decoder()
    encoded, tokens, plans, present = inputs()
    changed = with_hidden_future_changed(tokens)
    prior, prior_changed = dec.prior_of(encoded), dec.prior_of({**encoded, "view2": encoded["view2"] + 1.0})
    assert torch.equal(prior.mean, prior_changed.mean) and torch.equal(prior.stddev, prior_changed.stddev)
    before, after = dec.posterior_of(encoded, tokens), dec.posterior_of(encoded, changed)
    assert not torch.allclose(before.mean, after.mean) and not torch.allclose(before.stddev, after.stddev)
    # a prior sample does not read the hidden future either; the posterior's z reaches the prediction
    assert torch.equal(sample(dec, (encoded, tokens, plans, present), 1),
                       sample(dec, (encoded, changed, plans, present), 1))
    assert not torch.allclose(dec(encoded, tokens, plans, present)["view2"].prediction,
                              dec(encoded, changed, plans, present)["view2"].prediction)


def test_the_prior_follows_the_past_frame():
    dec = decoder()
    encoded, *_ = inputs()
    assert not torch.allclose(dec.prior_of(encoded).mean, dec.prior_of({**encoded, "view1": -encoded["view1"]}).mean)


def test_samples_of_one_past_differ_and_repeat_with_the_generator():
    dec = decoder()
    given = inputs()
    first, second = sample(dec, given, 1), sample(dec, given, 2)
    assert first.shape == (2, len(PREDICT), 5)
    assert not torch.allclose(first, second)
    assert torch.equal(first, sample(dec, given, 1))
    # temperature 0 is the prior's mean, whatever the generator draws
    assert torch.equal(sample(dec, given, 1, temperature=0.0), sample(dec, given, 2, temperature=0.0))


def test_training_draws_z_from_the_posterior_and_eval_takes_its_mean():
    dec, given = decoder(), inputs()
    assert torch.equal(dec(*given)["view2"].prediction, dec(*given)["view2"].prediction)
    dec.train()
    assert not torch.allclose(dec(*given)["view2"].prediction, dec(*given)["view2"].prediction)


def test_checkpointing_reruns_the_decoder_blocks_with_the_same_prediction_kl_and_gradients():
    results = []
    for checkpointing in (False, True):
        dec = decoder(dropout=0.2, checkpointing=checkpointing).train()
        calls = []
        for block in dec.blocks:
            block.register_forward_pre_hook(lambda module, args: calls.append(module))
        encoded, tokens, plans, present = inputs()
        encoded = {m: x.requires_grad_() for m, x in encoded.items()}
        torch.manual_seed(1)  # z's and dropout's draws: the recomputed forward must draw the same
        out = dec(encoded, tokens, plans, present)["view2"]
        (out.prediction.square().sum() + out.terms["kl"].sum()).backward()
        assert len(calls) == len(dec.blocks) * (2 if checkpointing else 1)
        results.append((out.prediction, out.terms["kl"], encoded["view1"].grad, dec.blocks[0].mlp[0].weight.grad))
    # exact: the rerun forward calls the same kernels on the same shapes and draws the same dropout
    for plain, checkpointed in zip(*results):
        assert torch.equal(plain, checkpointed)


def test_the_recipe_weighs_the_kl_by_its_warm_up():
    parse_config(["recipes/siammcvae.gin", MICRO], ["view2/LinearRamp.steps = 10"])
    model = MaskedAutoencoder()
    views = torch.rand(2, 2, 3, 1, 16, 16)
    out = model({"view1": views[0], "view2": views[1]}, MaskRNG.seeded(0, step=4))
    assert out.outputs["view2"].decoder_terms["kl"].shape == (2,)
    assert out.logs["view2_kl_weight"] == pytest.approx(LinearRamp(10, final=1e-3)(4))
    expected = out.logs["view2_reconstruction"] + LinearRamp(10, final=1e-3)(4) * out.logs["view2_kl"]
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_generate_fill_draws_several_futures_of_one_past():
    parse_config(["recipes/siammcvae.gin", MICRO])
    model = MaskedAutoencoder().eval()
    views = torch.rand(2, 2, 3, 1, 16, 16)
    batch = {"view1": views[0], "view2": views[1]}
    plan = model.modalities["view2"].mask(model.modalities["view2"].tokenize(batch["view2"]), batch, MaskRNG.seeded(0))
    futures = fill(model, batch, "view2", plan, num_samples=3, generator=torch.Generator().manual_seed(0))
    assert futures.shape == (3, 2, plan.predict.shape[1], model.modalities["view2"].target_dim)
    assert not torch.allclose(futures[0], futures[1]) and not torch.allclose(futures[1], futures[2])


def test_bfloat16_parameters_run_forward_and_sample():
    dec = decoder().to(torch.bfloat16)
    encoded, tokens, plans, present = inputs()
    encoded = {m: e.to(torch.bfloat16) for m, e in encoded.items()}
    tokens = {m: Tokens(t.embed.to(torch.bfloat16), t.target, GRID) for m, t in tokens.items()}  # float32 targets
    out = dec(encoded, tokens, plans, present)["view2"]
    drawn = dec.sample(encoded, tokens, plans, present, generator=torch.Generator().manual_seed(0))["view2"]
    assert out.prediction.shape == drawn.shape == (2, len(PREDICT), 5)
    assert torch.isfinite(out.prediction.float()).all() and torch.isfinite(out.terms["kl"]).all()


def test_forward_runs_on_shapes_alone():  # `mmmae bench memory` traces the step under FakeTensorMode
    from torch._subclasses.fake_tensor import FakeTensorMode

    dec, given = decoder().train(), inputs()
    with FakeTensorMode(allow_non_fake_inputs=True):  # real weights and inputs, fake activations
        out = dec(*given)["view2"]
    assert out.prediction.shape == (2, len(PREDICT), 5) and out.terms["kl"].shape == (2,)
