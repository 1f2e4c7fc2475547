"""The noise schedule: its tables against their formulas, q(x_t | x0), x0 <-> ε, DDPM's posterior, DDIM."""

import math

import pytest
import torch

from mmmae.nn.diffusion_schedule import DiffusionSchedule

EPS64 = torch.finfo(torch.float64).eps


def test_linear_alphas_cumprod_follow_ddpm_betas():
    schedule = DiffusionSchedule("linear", 1000)
    betas = [1e-4 + (0.02 - 1e-4) * i / 999 for i in range(1000)]
    for t in (0, 1, 499, 999):
        expected = math.prod(1 - b for b in betas[: t + 1])
        assert schedule.alphas_cumprod[t].item() == pytest.approx(expected, rel=1000 * EPS64)


def test_linear_betas_scale_with_the_number_of_steps():
    schedule = DiffusionSchedule("linear", 250)
    assert schedule.betas[0].item() == pytest.approx(4e-4) and schedule.betas[-1].item() == pytest.approx(0.08)


@pytest.mark.parametrize("timesteps", [1000, 50])
def test_cosine_alphas_cumprod_follow_nichol_and_dhariwal(timesteps):
    """ᾱ_t = f((t + 1) / T) / f(0), f(u) = cos²((u + 0.008) / 1.008 · π / 2), wherever β was not clipped at 0.999."""
    schedule = DiffusionSchedule("cosine", timesteps)

    def f(u: float) -> float:
        return math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2

    unclipped = int((schedule.betas < 0.999).sum())
    assert unclipped >= timesteps - 1  # only the last step, where f reaches 0, is clipped
    for t in range(unclipped):
        expected = f((t + 1) / timesteps) / f(0)
        assert schedule.alphas_cumprod[t].item() == pytest.approx(expected, rel=10 * (t + 1) * EPS64)
    assert (schedule.betas <= 0.999).all() and schedule.alphas_cumprod[-1] > 0


def test_noised_has_the_mean_and_variance_of_q_xt_given_x0():
    """Over n draws the sample mean is within 5 standard errors of √ᾱ x0, the variance of 1 - ᾱ."""
    schedule, n = DiffusionSchedule("cosine", 1000), 200_000
    x0 = torch.full((n, 1), 0.7, dtype=torch.float64)
    for step in (10, 500, 900):
        t = torch.full((n,), step)
        a = schedule.alphas_cumprod[step].item()
        x_t = schedule.noised(x0, t, torch.randn(n, 1, generator=torch.Generator().manual_seed(step),
                                                 dtype=torch.float64))
        variance, mean = torch.var_mean(x_t)
        assert abs(mean.item() - math.sqrt(a) * 0.7) < 5 * math.sqrt((1 - a) / n)
        assert abs(variance.item() - (1 - a)) < 5 * (1 - a) * math.sqrt(2 / n)


def test_x0_and_epsilon_convert_into_each_other():
    """Both inverses of noised(); dividing by √ᾱ_t (or √(1-ᾱ_t)) amplifies float64 rounding by its inverse."""
    schedule = DiffusionSchedule("cosine", 1000)
    g = torch.Generator().manual_seed(0)
    x0, noise = (torch.randn(6, 4, 3, generator=g, dtype=torch.float64) for _ in range(2))
    t = torch.tensor([0, 1, 250, 500, 998, 999])
    x_t = schedule.noised(x0, t, noise)
    a = schedule.alphas_cumprod[t].reshape(-1, 1, 1)
    size = x0.abs() + noise.abs()
    assert ((schedule.x0_from_epsilon(x_t, t, noise) - x0).abs() <= 8 * EPS64 * size / a.sqrt()).all()
    assert ((schedule.epsilon_from_x0(x_t, t, x0) - noise).abs() <= 8 * EPS64 * size / (1 - a).sqrt()).all()


def test_posterior_matches_ddpm_hand_computation():
    """q(x_{t-1} | x_t, x0): mean β_t √ᾱ_{t-1} / (1-ᾱ_t) x0 + √α_t (1-ᾱ_{t-1}) / (1-ᾱ_t) x_t, variance
    β_t (1-ᾱ_{t-1}) / (1-ᾱ_t), from the betas alone; at t = 0 it is x0 itself."""
    schedule = DiffusionSchedule("linear", 1000)
    x0, x_t = torch.tensor([[0.3, -1.2]], dtype=torch.float64), torch.tensor([[1.1, 0.4]], dtype=torch.float64)
    for step in (1, 400, 999):
        betas = schedule.betas.tolist()
        a_t, a_prev = math.prod(1 - b for b in betas[: step + 1]), math.prod(1 - b for b in betas[:step])
        beta = betas[step]
        mean, variance = schedule.posterior(x_t, x0, torch.tensor([step]), torch.tensor([step - 1]))
        expected = beta * math.sqrt(a_prev) / (1 - a_t) * x0 + math.sqrt(1 - beta) * (1 - a_prev) / (1 - a_t) * x_t
        torch.testing.assert_close(mean, expected, rtol=1e-9, atol=0)
        assert variance.item() == pytest.approx(beta * (1 - a_prev) / (1 - a_t), rel=1e-9)
    mean, variance = schedule.posterior(x_t, x0, torch.tensor([0]), torch.tensor([-1]))
    torch.testing.assert_close(mean, x0, rtol=0, atol=8 * EPS64)
    assert variance.item() == 0


def test_ddim_with_eta_one_has_the_posterior_variance():
    """σ_t(η = 1)² = (1-ᾱ_s)/(1-ᾱ_t) (1 - ᾱ_t/ᾱ_s), DDPM's posterior variance on a respaced step t -> s."""
    schedule = DiffusionSchedule("cosine", 1000)
    x0, x_t = torch.zeros(1, 1, dtype=torch.float64), torch.ones(1, 1, dtype=torch.float64)
    t, s = torch.tensor([700]), torch.tensor([650])
    noise = torch.ones(1, 1, dtype=torch.float64)
    sigma = schedule.ddim_step(x_t, x0, t, s, 1.0, noise) - schedule.ddim_step(x_t, x0, t, s, 1.0, None)
    assert sigma.item() ** 2 == pytest.approx(schedule.posterior(x_t, x0, t, s)[1].item(), rel=1e-9)


def test_ddim_with_zero_eta_is_deterministic_given_the_start_noise():
    schedule = DiffusionSchedule("cosine", 1000)
    like = torch.zeros(3, 5, 4)

    def predict_x0(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # any function of (x_t, t)
        return torch.tanh(x_t) * (1 + t[:, None, None] / 1000)

    def draw(seed: int, **settings) -> torch.Tensor:
        return schedule.sample(predict_x0, like, steps=10, generator=torch.Generator().manual_seed(seed), **settings)

    assert torch.equal(draw(0), draw(0))
    assert not torch.equal(draw(0), draw(1))
    assert not torch.equal(draw(0, eta=1.0), draw(0))  # eta > 0 draws fresh noise at each step
    assert torch.equal(draw(0, sampler="ddpm"), draw(0, sampler="ddpm"))


def test_the_sample_is_the_last_prediction_of_x0():
    schedule = DiffusionSchedule("linear", 100)
    target = torch.arange(6.0).reshape(2, 3)
    for sampler in ("ddim", "ddpm"):
        out = schedule.sample(lambda x_t, t: target, torch.zeros(2, 3), steps=7, sampler=sampler)
        assert torch.equal(out, target)


def test_sampling_timesteps_run_down_from_the_last_to_the_first():
    schedule = DiffusionSchedule("cosine", 1000)
    assert schedule.sampling_timesteps(1) == [999]
    assert schedule.sampling_timesteps(4) == [999, 666, 333, 0]
    assert schedule.sampling_timesteps(1000) == list(range(999, -1, -1))


@pytest.mark.parametrize("call, message", [
    (lambda: DiffusionSchedule("quadratic"), r"DiffusionSchedule.kind = 'quadratic' is not one of"),
    (lambda: DiffusionSchedule("cosine", 0), r"timesteps must be at least 1"),
    (lambda: DiffusionSchedule("cosine", 10).sampling_timesteps(11), r"sampling steps must be in 1..10"),
    (lambda: DiffusionSchedule("cosine", 10).sample(lambda x, t: x, torch.zeros(1), steps=2, sampler="euler"),
     r"sampler = 'euler' is not one of"),
])
def test_bad_settings_are_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()
