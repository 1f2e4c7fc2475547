"""A loss weight that follows the optimizer step: a curriculum between objectives."""

import math

import gin


@gin.configurable(module="mmmae")
class CosineRamp:
    """weight(step) = final * min(1, scale * (1 - cos(pi * min(step, steps) / steps))): 0 at step 0,
    `final` from step steps * arccos(1 - 1 / scale) / pi on (when scale >= 0.5). CDFSL-V's
    curriculum λ(e) = min(1, 0.75 (1 - cos(π e / E))) is scale 0.75, steps = E: it reaches 1 at
    e / E ≈ 0.61. Bind it as an objective's weight, e.g. `video/Reconstruction.weight =
    @CosineRamp()`; the step is the one the trainer passes (a resumed run continues the ramp)."""

    def __init__(self, steps: int = gin.REQUIRED, scale: float = 0.75, final: float = 1.0):
        if steps < 1:
            raise ValueError(f"CosineRamp.steps must be at least 1, got {steps}")
        if scale <= 0:
            raise ValueError(f"CosineRamp.scale must be positive, got {scale}")
        self.steps, self.scale, self.final = steps, scale, final

    def __call__(self, step: int) -> float:
        return self.final * min(1.0, self.scale * (1 - math.cos(math.pi * min(step, self.steps) / self.steps)))


@gin.configurable(module="mmmae")
class LinearRamp:
    """weight(step) = final * min(step, steps) / steps: 0 at step 0, `final` from step `steps` on. A
    VAE's KL warm-up (recipes/siammcvae.gin): `view2/DecoderTerm.weight = @view2/LinearRamp()`; the step
    is the one the trainer passes (a resumed run continues the ramp)."""

    def __init__(self, steps: int = gin.REQUIRED, final: float = 1.0):
        if steps < 1:
            raise ValueError(f"LinearRamp.steps must be at least 1, got {steps}")
        self.steps, self.final = steps, final

    def __call__(self, step: int) -> float:
        return self.final * min(step, self.steps) / self.steps
