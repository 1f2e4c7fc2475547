"""Randomness for maskers that does not depend on how the batch is split over processes."""

import torch


@torch.library.custom_op("mmmae::uniform_noise", mutates_args={"state"})
def uniform_noise(state: torch.Tensor, shape: list[int], device: torch.device) -> torch.Tensor:
    """torch.rand(shape) from a generator on `device` in `state` (Generator.get_state()), which
    is advanced in place. An opaque op: torch.compile cannot trace a torch.Generator."""
    generator = torch.Generator(device=device)
    generator.set_state(state)
    noise = torch.rand(shape, generator=generator, device=device)
    state.copy_(generator.get_state())
    return noise


@uniform_noise.register_fake
def _(state: torch.Tensor, shape: list[int], device: torch.device) -> torch.Tensor:
    return torch.empty(shape, device=device)


class MaskRNG:
    """Draws for the global batch from one seeded generator and returns this process's rows.

    Every process seeds the same generator per micro-step, so sample i of the global batch
    gets the same mask whether it runs on one process or on several. `step` is the optimizer
    step being trained (0 outside training), for maskers that change over training. The
    generator is held as its state tensor, so that a compiled model draws without a graph break.
    """

    def __init__(self, generator: torch.Generator, rank: int = 0, world_size: int = 1, step: int = 0):
        self.state = generator.get_state()
        self.device = generator.device
        self.rank = rank
        self.world_size = world_size
        self.step = step

    @classmethod
    def seeded(cls, seed: int, device: torch.device | str = "cpu", rank: int = 0, world_size: int = 1,
               step: int = 0) -> "MaskRNG":
        return cls(torch.Generator(device=device).manual_seed(seed), rank, world_size, step)

    def rand(self, batch: int, *shape: int) -> torch.Tensor:
        """Uniform [0, 1) noise (batch, *shape) on the generator's device: this process's rows."""
        noise = uniform_noise(self.state, [batch * self.world_size, *shape], self.device)
        return noise[self.rank * batch : (self.rank + 1) * batch]
