"""Randomness for maskers that does not depend on how the batch is split over processes."""

import torch


class MaskRNG:
    """Draws for the global batch from one seeded generator and returns this process's rows.

    Every process seeds the same generator per micro-step, so sample i of the global batch
    gets the same mask whether it runs on one process or on several. `step` is the optimizer
    step being trained (0 outside training), for maskers that change over training.
    """

    def __init__(self, generator: torch.Generator, rank: int = 0, world_size: int = 1, step: int = 0):
        self.generator = generator
        self.rank = rank
        self.world_size = world_size
        self.step = step

    @classmethod
    def seeded(cls, seed: int, device: torch.device | str = "cpu", rank: int = 0, world_size: int = 1,
               step: int = 0) -> "MaskRNG":
        return cls(torch.Generator(device=device).manual_seed(seed), rank, world_size, step)

    def rand(self, batch: int, *shape: int) -> torch.Tensor:
        """Uniform [0, 1) noise (batch, *shape) on the generator's device: this process's rows."""
        noise = torch.rand(batch * self.world_size, *shape, generator=self.generator, device=self.generator.device)
        return noise[self.rank * batch : (self.rank + 1) * batch]
