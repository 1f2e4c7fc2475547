"""The diffusion decoder: what it is scored against, sampling, sampling steps, and training in the model."""

from functools import partial

import pytest
import torch

from mmmae.masking.random import RandomMasking
from mmmae.masking.rng import MaskRNG
from mmmae.model import MaskedAutoencoder, Modality
from mmmae.nn.diffusion_decoder import DiffusionDecoder
from mmmae.nn.diffusion_schedule import DiffusionSchedule
from mmmae.nn.encoder import Encoder
from mmmae.objectives.reconstruction import Reconstruction
from mmmae.tokenizers.video import TubeletTokenizer
from mmmae.types import Decoded, MaskPlan
from tests.float32_bound import rounding_bound

GRID = (1, 2, 4)


def plan(batch: int = 3) -> MaskPlan:
    return MaskPlan(keep=torch.tensor([[0, 5]] * batch), predict=torch.tensor([[1, 2, 3, 4, 6, 7]] * batch))


def decoder(**kwargs) -> DiffusionDecoder:
    torch.manual_seed(0)
    return DiffusionDecoder(16, 8, **{"dim": 32, "depth": 2, "heads": 2, **kwargs})


def inputs(batch: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(batch, 2, 16, generator=g), torch.randn(batch, 6, 8, generator=g)


@pytest.mark.parametrize("prediction", ["x0", "epsilon"])
def test_scored_against_x0_or_the_noise_it_added(prediction):
    """The answer's target is the ε drawn from torch's global generator, or none for x0 (the tokens' own)."""
    encoded, target, dec = *inputs(), decoder(prediction=prediction)
    torch.manual_seed(7)
    out = dec(encoded, GRID, plan(), target=target)
    torch.manual_seed(7)
    torch.randint(0, 1000, (3,))  # t, drawn first
    noise = torch.randn_like(target)
    assert isinstance(out, Decoded) and out.prediction.shape == (3, 6, 8) and out.terms == {}
    assert out.target is None if prediction == "x0" else torch.equal(out.target, noise)


def test_the_prediction_depends_on_the_visible_tokens_and_the_class_token():
    dec = decoder().eval()
    encoded, target = inputs()
    torch.manual_seed(1)
    before = dec(encoded, GRID, plan(), target=target).prediction
    bound = rounding_bound(before, 4, 32 * 4)
    for changed in (dict(encoded=encoded + 1), dict(cls=torch.randn(3, 16))):
        torch.manual_seed(1)
        after = dec(**{"encoded": encoded, **changed}, grid=GRID, plan=plan(), target=target).prediction
        assert (after - before).abs().max() > bound, changed


def test_checkpointing_gives_the_same_output_and_gradients():
    encoded, target = inputs()
    results = []
    for checkpointing in (False, True):
        dec = decoder(checkpointing=checkpointing).train()
        torch.manual_seed(3)
        out = dec(encoded, GRID, plan(), target=target)
        out.prediction.square().sum().backward()
        results.append((out.prediction.detach(), dec.head.weight.grad))
    (a, grad_a), (b, grad_b) = results
    assert torch.equal(a, b)
    torch.testing.assert_close(grad_b, grad_a, rtol=0, atol=rounding_bound(grad_a, 8, 32 * 4 * 3))


def test_samples_are_reproducible_from_their_generator():
    dec = decoder().eval()
    encoded, _ = inputs()

    def draw(seed: int, **settings) -> torch.Tensor:
        return dec.sample(encoded, GRID, plan(), generator=torch.Generator().manual_seed(seed), steps=5, **settings)

    assert draw(0).shape == (3, 6, 8)
    assert torch.equal(draw(0), draw(0)) and not torch.equal(draw(0), draw(1))
    assert torch.equal(draw(0, sampler="ddpm"), draw(0, sampler="ddpm"))
    assert not torch.equal(draw(0, sampler="ddpm"), draw(0))


@pytest.mark.parametrize("kwargs, message", [
    (dict(prediction="v"), r"DiffusionDecoder.prediction = 'v' is not one of"),
    (dict(dim=27, heads=3), r"DiffusionDecoder.dim must be even"),
])
def test_bad_bindings_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        decoder(**kwargs)


def test_training_needs_the_target():
    with pytest.raises(ValueError, match="call it with target="):
        decoder()(inputs()[0], GRID, plan())


def test_more_sampling_steps_find_a_mode_that_one_step_averages_away():
    """One visible context, two equally likely completions a and b (a fixed clip's hidden part with two
    answers). An x0-predicting decoder's one step from pure noise answers E[x0] ≈ (a + b) / 2, at RMS
    distance d / 2 from both (d = RMS(a - b)); sampling over 20 steps commits to one of them. Trained
    to overfit (400 steps, 2 s), 20 steps must land within d / 4 of a completion and at most half as
    far as one step does."""
    torch.manual_seed(0)
    batch, g = 64, torch.Generator().manual_seed(0)
    encoded = torch.randn(1, 2, 16, generator=g).expand(batch, -1, -1)
    completions = torch.randn(2, 6, 8, generator=g)
    dec = DiffusionDecoder(16, 8, dim=32, depth=1, heads=2, schedule=DiffusionSchedule("cosine", 100))
    optimizer = torch.optim.AdamW(dec.parameters(), lr=3e-3)
    for _ in range(400):
        target = completions[torch.randint(0, 2, (batch,))]
        out = dec(encoded, GRID, plan(batch), target=target)
        optimizer.zero_grad()
        (out.prediction - target).square().mean().backward()
        optimizer.step()
    dec.eval()

    def distance_to_nearest(steps: int) -> float:
        drawn = dec.sample(encoded, GRID, plan(batch), steps=steps, generator=torch.Generator().manual_seed(1))
        return torch.stack([(drawn - c).square().mean(dim=(1, 2)) for c in completions]).amin(0).sqrt().mean().item()

    d = (completions[0] - completions[1]).square().mean().sqrt().item()
    one, twenty = distance_to_nearest(1), distance_to_nearest(20)
    assert twenty < d / 4 and twenty < one / 2, (one, twenty, d)


@pytest.mark.parametrize("prediction", ["x0", "epsilon"])
def test_trains_through_the_model_and_reconstruction(prediction):
    """MaskedAutoencoder hands the decoder the target at plan.predict; Reconstruction scores the
    prediction against the decoder's own target; the gradient reaches the encoder."""
    torch.manual_seed(0)
    video = Modality("video", TubeletTokenizer(dim=16, tubelet=2, patch=4, norm_target="standardized"),
                     RandomMasking(0.75), partial(DiffusionDecoder, dim=16, depth=1, heads=2, prediction=prediction))
    model = MaskedAutoencoder([video], partial(Encoder, dim=16, depth=1, heads=2), [Reconstruction("video")])
    batch = {"video": torch.rand(2, 3, 4, 8, 8)}
    out = model(batch, MaskRNG.seeded(0))
    video_out = out.outputs["video"]
    assert video_out.prediction.shape == (2, 6, 96)
    scored = video_out.prediction_target
    if prediction == "x0":
        assert scored is None
        scored = torch.gather(video_out.tokens.target, 1, video_out.plan.predict[..., None].expand(-1, -1, 96))
    expected = (video_out.prediction - scored).square().mean()
    torch.testing.assert_close(out.loss, expected, rtol=8 * torch.finfo(torch.float32).eps * 2 * 6 * 96, atol=0)
    out.loss.backward()
    assert model.encoder.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
