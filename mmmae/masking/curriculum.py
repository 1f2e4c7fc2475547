"""Masking-ratio curriculum (Diffusion-MAViL): any masker, its ratio a function of the training step."""

import math
from collections.abc import Callable

import gin

from mmmae.masking.base import check_ratio
from mmmae.masking.rng import MaskRNG
from mmmae.types import MaskPlan, Tokens

SHAPES = ("linear", "cosine")


@gin.configurable(module="mmmae")
class RatioCurriculum:
    """Masks with `masker(ratio=r(step))`: r goes from `start` at step 0 to `end` at step `steps`
    (linearly, or along a half cosine), then stays at `end`.

    masker: a masker factory taking `ratio` (gin: `@video/TubeMasking`, no parentheses); both
    end points are built at construction, so a bad ratio fails before training. The step is
    the optimizer step the trainer passes in `rng.step`, so a resumed run continues the curriculum.
    """

    def __init__(self, masker: Callable = gin.REQUIRED, start: float = gin.REQUIRED, end: float = gin.REQUIRED,
                 steps: int = gin.REQUIRED, shape: str = "linear"):
        check_ratio("RatioCurriculum", start, "start")
        check_ratio("RatioCurriculum", end, "end")
        if steps < 1:
            raise ValueError(f"RatioCurriculum.steps must be at least 1, got {steps}")
        if shape not in SHAPES:
            raise ValueError(f"RatioCurriculum.shape must be one of {SHAPES}, got {shape!r}")
        for ratio in (start, end):
            masker(ratio=ratio)  # the masker's own checks run now, not at step k
        self.masker, self.start, self.end, self.steps, self.shape = masker, start, end, steps, shape

    def ratio_at(self, step: int) -> float:
        """The masking ratio at an optimizer step."""
        progress = min(max(step, 0) / self.steps, 1.0)
        if self.shape == "cosine":
            progress = (1 - math.cos(math.pi * progress)) / 2
        return self.start + (self.end - self.start) * progress

    def __call__(self, tokens: Tokens, batch: dict, rng: MaskRNG) -> MaskPlan:
        return self.masker(ratio=self.ratio_at(rng.step))(tokens, batch, rng)
