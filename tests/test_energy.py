"""`mmmae.score` on the shipped zoo model: a gradient reaches the pixels, corrupted clips score higher than
their clean originals, and a seeded generator makes it deterministic."""

import importlib.util
import re
import sys
from pathlib import Path

import pytest
import torch
from torch.distributions import Normal

import mmmae
from mmmae.config import parse_config
from mmmae.data.moving_digits.dataset import MovingDigits
from mmmae.energy import energies
from mmmae.masking.random import RandomMasking
from mmmae.model import MaskedAutoencoder, Modality
from mmmae.nn.encoder import Encoder
from mmmae.objectives.reconstruction import Reconstruction
from mmmae.zoo.pretrained import from_pretrained
from tests.float32_bound import longest_sum, mse_bound, rounding_bound, transformer_stages
from tests.generation_fakes import CodeFiller, GreyCodes, SamplingDecoder, video_model

MICRO = str(Path(__file__).parent / "fixtures" / "micro_overrides.gin")


@pytest.fixture(scope="module")
def model():
    return from_pretrained("tiny-video-movingdigits").requires_grad_(False)


@pytest.fixture(scope="module")
def clips():
    data = MovingDigits(split="test", num_samples=8, frames=8, size=16, digit_size=12, modalities=("video",))
    return torch.stack([data[i]["video"] for i in range(8)])


def test_mmmae_score_is_the_function_and_its_gradient_reaches_the_pixels(model, clips):
    clip = clips[0].clone().requires_grad_(True)
    energy = mmmae.score(model, clip, generator=torch.Generator().manual_seed(0))
    energy.backward()
    assert energy.ndim == 0 and clip.grad is not None
    assert torch.isfinite(clip.grad).all() and clip.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())


def test_a_seeded_generator_makes_it_deterministic(model, clips):
    first = mmmae.score(model, clips[:2], generator=torch.Generator().manual_seed(3))
    again = mmmae.score(model, clips[:2], generator=torch.Generator().manual_seed(3))
    other = mmmae.score(model, clips[:2], generator=torch.Generator().manual_seed(4))
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_the_batch_score_is_the_mean_of_the_clips_energies(model, clips):
    each = energies(model, clips[:3], generator=torch.Generator().manual_seed(0))
    batch = mmmae.score(model, clips[:3], generator=torch.Generator().manual_seed(0))
    first = mmmae.score(model, clips[0], generator=torch.Generator().manual_seed(0))  # the batch's first 8 masks
    assert each.shape == (3,) and torch.equal(batch, each.mean())
    # the same masks in a batch of another size: float32 kernels may differ in rounding only. A
    # prediction is at most the target's largest value plus the root of a draw's summed squared error
    # (at most draws * energy per value) away from 0; the mean of `count` squared errors moves by mse_bound.
    tokens = model.modalities["video"].tokenize(clips[:1])
    count = (tokens.num_tokens - int(tokens.num_tokens * 0.25)) * tokens.target.shape[-1]  # Q * P per draw
    largest = tokens.target.abs().max() + (count * 8 * each[0]).sqrt()
    difference = rounding_bound(largest, transformer_stages(model), longest_sum(model, tokens.num_tokens))
    assert (first - each[0]).abs() <= mse_bound(each[0], difference, count)


@pytest.mark.parametrize("corruption", ["noise", "pasted box"])
def test_every_corrupted_clip_scores_higher_than_its_clean_original(model, clips, corruption):
    # Paired, over every clip. Measured on 32 test clips (docs/guidance.md): the paired difference is
    # 0.105 +- 0.026 (noise) and 0.132 +- 0.066 (pasted box), every one of the 32 positive.
    if corruption == "noise":
        corrupted = (clips + 0.2 * torch.randn(clips.shape, generator=torch.Generator().manual_seed(123))).clamp(0, 1)
    else:
        corrupted = clips.clone()
        corrupted[..., 4:12, 4:12] = clips.roll(1, dims=0)[..., 0:8, 0:8]  # another clip's corner pasted in
    clean = energies(model, clips, generator=torch.Generator().manual_seed(0))
    worse = energies(model, corrupted, generator=torch.Generator().manual_seed(0))
    assert (worse > clean).all(), (worse - clean).tolist()


def test_no_draws_is_refused(model, clips):
    with pytest.raises(ValueError, match="draws = 0, need at least 1"):
        mmmae.score(model, clips[0], draws=0)


class NoisyDecoder(SamplingDecoder):
    """A decoder whose forward draws from torch's global generator (as a diffusion decoder's training step does)."""

    def forward(self, encoded, grid, plan):
        return super().forward(encoded, grid, plan) + torch.randn(*plan.predict.shape, 1)


def test_the_generator_also_seeds_the_decoders_own_draws_and_leaves_the_global_generator_alone():
    model, clips = video_model(NoisyDecoder), torch.rand(2, 3, 4, 16, 16)
    torch.manual_seed(5)
    first = energies(model, clips, generator=torch.Generator().manual_seed(0))
    after = torch.rand(1)
    torch.manual_seed(5)
    again = energies(model, clips, generator=torch.Generator().manual_seed(0))
    assert torch.equal(first, again) and torch.equal(torch.rand(1), after)


class DeviceNoisyDecoder(SamplingDecoder):
    """NoisyDecoder drawing on the encoded tokens' device (the global generator of that device)."""

    def forward(self, encoded, grid, plan):
        noise = torch.randn(*plan.predict.shape, 1, device=encoded.device)
        return super().forward(encoded, grid, plan) + noise


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_the_generator_seeds_the_clips_device_and_leaves_its_generator_alone():
    model, clips = video_model(DeviceNoisyDecoder).cuda(), torch.rand(2, 3, 4, 16, 16, device="cuda")
    torch.cuda.manual_seed(5)
    first = energies(model, clips, generator=torch.Generator().manual_seed(0))
    after = torch.rand(1, device="cuda")
    torch.cuda.manual_seed(6)
    again = energies(model, clips, generator=torch.Generator().manual_seed(0))
    torch.cuda.manual_seed(5)
    assert torch.equal(first, again) and torch.equal(torch.rand(1, device="cuda"), after)


def test_discrete_code_targets_are_refused():
    model = MaskedAutoencoder([Modality("video", GreyCodes(), RandomMasking(0.5), decoder=CodeFiller)],
                              lambda modalities: Encoder(modalities, dim=32, depth=1, heads=2),
                              [Reconstruction("video")])
    with pytest.raises(ValueError, match=r"discrete ids \(GreyCodes\), which no gradient crosses back to the pixels"):
        mmmae.score(model, torch.rand(3, 4, 16, 16))


@pytest.fixture()
def siammcvae():
    parse_config(["recipes/siammcvae.gin", MICRO])
    return MaskedAutoencoder().eval().requires_grad_(False)


def test_a_variational_decoder_is_scored_from_the_prior_never_the_posterior(siammcvae, monkeypatch):
    views = torch.rand(2, 2, 3, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    clip = views[1].clone().requires_grad_(True)
    first = mmmae.score(siammcvae, clip, modality="view2", context={"view1": views[0]},
                        generator=torch.Generator().manual_seed(0))
    first.backward()
    assert clip.grad is not None and clip.grad.abs().sum() > 0
    decoder = siammcvae.decoder
    posterior = decoder.posterior_of
    monkeypatch.setattr(decoder, "posterior_of", lambda *args: Normal(posterior(*args).mean + 5.0, 1.0))
    again = mmmae.score(siammcvae, views[1], modality="view2", context={"view1": views[0]},
                        generator=torch.Generator().manual_seed(0))
    assert torch.equal(first.detach(), again)


def test_a_model_level_decoder_without_the_other_modalities_is_refused(siammcvae):
    with pytest.raises(ValueError, match=r"give the others as context=\{name: input\} \(missing \['view1'\]\)"):
        mmmae.score(siammcvae, torch.rand(2, 3, 1, 16, 16), modality="view2")


@pytest.mark.parametrize("shape", [(8, 16, 16), (2, 1, 4, 16, 16), (3, 2, 4, 8, 16, 16)])
def test_a_clip_of_the_wrong_shape_is_refused_with_the_shape_the_tokenizer_takes(model, shape):
    with pytest.raises(ValueError, match=r"score: 'video' \(TubeletTokenizer\) takes a clip \(3, T, H, W\) or a "
                                         r"batch \(B, 3, T, H, W\), got a tensor of shape " + re.escape(str(shape))):
        mmmae.score(model, torch.rand(shape))


def test_an_unknown_modality_names_the_argument_and_the_models_modalities(siammcvae):
    with pytest.raises(ValueError, match=r"score: modality='video', but the model's modalities are "
                                         r"\['view1', 'view2'\]"):
        mmmae.score(siammcvae, torch.rand(2, 3, 1, 16, 16))


@pytest.mark.parametrize("argv, shown", [
    (["--help"], "and draw one clip (clean, corrupted, guided)."),
    (["--clips", "0"], "argument --clips: '0' is not a whole number of at least 1"),
])
def test_the_guidance_example_describes_itself_whole_and_takes_at_least_one_clip(argv, shown, monkeypatch, capsys):
    spec = importlib.util.spec_from_file_location("guidance_example", Path("tools/guidance_example.py"))
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    monkeypatch.setattr(sys, "argv", ["guidance_example.py", *argv])
    with pytest.raises(SystemExit):
        example.main()
    printed = capsys.readouterr()
    assert shown in " ".join((printed.out + printed.err).split())
