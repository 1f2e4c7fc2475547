"""MaskRNG: the seeded generator's draws, this process's rows, and draws inside a compiled graph."""

import torch
import torch._dynamo

from mmmae.masking.rng import MaskRNG


def test_draws_follow_the_seeded_generator_and_split_by_rank():
    generator = torch.Generator().manual_seed(3)
    expected = [torch.rand(4, 5, generator=generator), torch.rand(4, 2, 3, generator=generator)]
    for rank in (0, 1):
        rng = MaskRNG.seeded(3, rank=rank, world_size=2)
        torch.testing.assert_close(rng.rand(2, 5), expected[0][2 * rank : 2 * rank + 2], atol=0, rtol=0)
        torch.testing.assert_close(rng.rand(2, 2, 3), expected[1][2 * rank : 2 * rank + 2], atol=0, rtol=0)


def test_a_compiled_function_draws_as_eager_and_advances_the_generator():
    def draw(rng: MaskRNG) -> torch.Tensor:
        return torch.stack([rng.rand(2, 4), rng.rand(2, 4)])

    torch._dynamo.reset()
    compiled = torch.compile(draw, backend="aot_eager", fullgraph=True)
    eager_rng, compiled_rng = MaskRNG.seeded(5), MaskRNG.seeded(5)
    for _ in range(2):  # the second call continues from the state the first left
        expected = draw(eager_rng)
        torch.testing.assert_close(compiled(compiled_rng), expected, atol=0, rtol=0)
    assert not torch.equal(expected[0], expected[1])
    torch._dynamo.reset()
