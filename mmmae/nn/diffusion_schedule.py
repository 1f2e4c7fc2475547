"""A Gaussian diffusion's noise schedule: the forward process q(x_t | x_0) in closed form, the
conversions between x_0 and ε, and the reverse steps (DDPM's posterior, DDIM) over a chosen
sub-sequence of timesteps.

Timesteps are indices t in 0..T-1; ᾱ_t = prod_{i <= t} (1 - β_i), and ᾱ_{-1} = 1 (the clean
data), the step a sampler ends on. Tables are float64 on the CPU; each call casts the rows it
uses to its input's device and dtype.
"""

import math
from collections.abc import Callable

import gin
import torch

KINDS = ("linear", "cosine")
SAMPLERS = ("ddim", "ddpm")
COSINE_OFFSET = 0.008  # Nichol & Dhariwal's s
MAX_BETA = 0.999  # Nichol & Dhariwal's clip of the cosine schedule's last betas


def linear_betas(timesteps: int) -> torch.Tensor:
    """DDPM's betas, 1e-4 to 0.02 at T = 1000, scaled by 1000 / T (Nichol & Dhariwal) for other T."""
    scale = 1000 / timesteps
    return torch.linspace(scale * 1e-4, scale * 0.02, timesteps, dtype=torch.float64)


def cosine_alpha_bar(u: torch.Tensor) -> torch.Tensor:
    """Nichol & Dhariwal's f(u) / f(0), f(u) = cos²((u + s) / (1 + s) · π / 2), u = t / T in [0, 1]."""
    f0 = math.cos(COSINE_OFFSET / (1 + COSINE_OFFSET) * math.pi / 2) ** 2
    return torch.cos((u + COSINE_OFFSET) / (1 + COSINE_OFFSET) * math.pi / 2) ** 2 / f0


def cosine_betas(timesteps: int) -> torch.Tensor:
    """β_t = min(1 - ᾱ((t + 1) / T) / ᾱ(t / T), 0.999) for t in 0..T-1."""
    u = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
    alpha_bar = cosine_alpha_bar(u)
    return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=MAX_BETA)


@gin.configurable(module="mmmae")
class DiffusionSchedule:
    """`kind` ('linear': DDPM; 'cosine': Nichol & Dhariwal) over `timesteps` steps T."""

    def __init__(self, kind: str = "cosine", timesteps: int = 1000):
        if kind not in KINDS:
            raise ValueError(f"DiffusionSchedule.kind = {kind!r} is not one of {KINDS}")
        if timesteps < 1:
            raise ValueError(f"DiffusionSchedule.timesteps must be at least 1, got {timesteps}")
        self.kind, self.timesteps = kind, timesteps
        self.betas = linear_betas(timesteps) if kind == "linear" else cosine_betas(timesteps)  # (T,)
        self.alphas_cumprod = torch.cumprod(1 - self.betas, dim=0)  # (T,) ᾱ_t
        self._alpha_bar = torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_cumprod])  # ᾱ_{t-1..}

    def alpha_bar(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """ᾱ_t for t (B,) in -1..T-1 (ᾱ_{-1} = 1), shaped (B, 1, ...) to broadcast against `like`."""
        rows = self._alpha_bar.to(t.device)[t + 1].to(like.dtype)
        return rows.reshape(-1, *[1] * (like.ndim - 1))

    def noised(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = √ᾱ_t x0 + √(1 - ᾱ_t) ε, a draw of q(x_t | x0); x0, noise (B, ...), t (B,)."""
        a = self.alpha_bar(t, x0)
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def x0_from_epsilon(self, x_t: torch.Tensor, t: torch.Tensor, epsilon: torch.Tensor) -> torch.Tensor:
        """x0 = (x_t - √(1 - ᾱ_t) ε) / √ᾱ_t."""
        a = self.alpha_bar(t, x_t)
        return (x_t - (1 - a).sqrt() * epsilon) / a.sqrt()

    def epsilon_from_x0(self, x_t: torch.Tensor, t: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """ε = (x_t - √ᾱ_t x0) / √(1 - ᾱ_t)."""
        a = self.alpha_bar(t, x_t)
        return (x_t - a.sqrt() * x0) / (1 - a).sqrt()

    def posterior(self, x_t: torch.Tensor, x0: torch.Tensor, t: torch.Tensor, s: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance of q(x_s | x_t, x0) for s < t (DDPM's posterior; s = t - 1 is DDPM's step,
        any earlier s a step of a respaced sub-sequence): with α = ᾱ_t / ᾱ_s, β = 1 - α,
        mean = √ᾱ_s β / (1 - ᾱ_t) x0 + √α (1 - ᾱ_s) / (1 - ᾱ_t) x_t, variance = (1 - ᾱ_s) / (1 - ᾱ_t) β."""
        a_t, a_s = self.alpha_bar(t, x_t), self.alpha_bar(s, x_t)
        alpha = a_t / a_s
        mean = (a_s.sqrt() * (1 - alpha) * x0 + alpha.sqrt() * (1 - a_s) * x_t) / (1 - a_t)
        return mean, (1 - a_s) / (1 - a_t) * (1 - alpha)

    def ddim_step(self, x_t: torch.Tensor, x0: torch.Tensor, t: torch.Tensor, s: torch.Tensor, eta: float,
                  noise: torch.Tensor | None) -> torch.Tensor:
        """DDIM's x_s from x_t and a predicted x0: √ᾱ_s x0 + √(1 - ᾱ_s - σ²) ε̂ + σ z, with
        σ = η √((1 - ᾱ_s) / (1 - ᾱ_t)) √(1 - ᾱ_t / ᾱ_s); η = 0 is deterministic (noise unused)."""
        a_t, a_s = self.alpha_bar(t, x_t), self.alpha_bar(s, x_t)
        sigma = eta * ((1 - a_s) / (1 - a_t) * (1 - a_t / a_s)).sqrt()
        x_s = a_s.sqrt() * x0 + (1 - a_s - sigma**2).clamp_min(0).sqrt() * self.epsilon_from_x0(x_t, t, x0)
        return x_s if noise is None else x_s + sigma * noise

    def sampling_timesteps(self, steps: int) -> list[int]:
        """`steps` timesteps evenly spaced from T-1 down to 0 (rounded), the order a sampler visits them."""
        if not 1 <= steps <= self.timesteps:
            raise ValueError(f"sampling steps must be in 1..{self.timesteps} (DiffusionSchedule.timesteps), "
                             f"got {steps}")
        return torch.linspace(self.timesteps - 1, 0, steps, dtype=torch.float64).round().long().tolist()

    def sample(self, predict_x0: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], like: torch.Tensor, *,
               steps: int, sampler: str = "ddim", eta: float = 0.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """From x_{T-1} ~ N(0, I) shaped as `like` (its device and dtype) to x_{-1} along
        sampling_timesteps(steps): each step asks predict_x0(x_t, t (B,)) -> x0, then takes DDIM's step
        (eta) or DDPM's (a draw of the posterior). Noise comes from `generator` (else torch's global
        one), drawn on its device."""
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler = {sampler!r} is not one of {SAMPLERS}")
        if eta < 0:
            raise ValueError(f"eta must be at least 0, got {eta}")

        def gaussian() -> torch.Tensor:
            device = like.device if generator is None else generator.device
            return torch.randn(like.shape, generator=generator, device=device).to(like)

        timesteps = self.sampling_timesteps(steps)
        x = gaussian()
        for t_now, t_next in zip(timesteps, timesteps[1:] + [-1]):
            t = torch.full(like.shape[:1], t_now, dtype=torch.long, device=like.device)
            s = torch.full_like(t, t_next)
            x0 = predict_x0(x, t)
            if t_next >= 0 and sampler == "ddpm":
                mean, variance = self.posterior(x, x0, t, s)
                x = mean + variance.sqrt() * gaussian()
            elif t_next >= 0:
                x = self.ddim_step(x, x0, t, s, eta, gaussian() if eta > 0 else None)
        return x0  # the last step's prediction: x_{-1}, where ᾱ = 1
