"""MaskGIT's masking schedule: a ratio drawn from cos(π/2 · u), u ~ U(0, 1), random tokens."""

import math

import gin

from mmmae.masking.base import split_by_noise
from mmmae.masking.rng import MaskRNG, uniform_noise
from mmmae.types import MaskPlan, Tokens


def maskgit_count(u: float, total: int) -> int:
    """Tokens masked at draw u in [0, 1): ceil(cos(π/2 · u) · total), at least 1 and at most total - 1."""
    return min(max(math.ceil(math.cos(math.pi / 2 * u) * total), 1), total - 1)


@gin.configurable(module="mmmae")
class MaskGITMasking:
    """Hide maskgit_count(u, N) random tokens of every sample, u drawn once per micro-batch.

    MaskGIT (Chang et al., 2022) and MotionAura draw the ratio per sample; here it is one draw per
    micro-batch, shared by every process (the same generator state everywhere), because a plan keeps
    the same number of tokens K for every sample of a batch. Which tokens: uniform noise per sample
    from the MaskRNG, as RandomMasking.
    """

    def __call__(self, tokens: Tokens, batch: dict, rng: MaskRNG) -> MaskPlan:
        batch_size, total = tokens.embed.shape[:2]
        if total < 2:
            raise ValueError(f"MaskGITMasking needs at least 2 tokens to keep one and mask one, the grid "
                             f"{tokens.grid} has {total}")
        u = float(uniform_noise(rng.state, [1], rng.device))  # one draw for the global batch
        keep, predict = split_by_noise(rng.rand(batch_size, total), total - maskgit_count(u, total))
        return MaskPlan(keep=keep, predict=predict)
