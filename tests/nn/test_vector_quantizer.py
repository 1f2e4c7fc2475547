"""The vector quantiser: nearest codes by cosine, straight-through gradient, VQ-VAE's two terms."""

import math

import pytest
import torch
import torch.nn.functional as F

from mmmae.nn.vector_quantizer import VectorQuantizer


def quantizer(num_codes: int = 16, dim: int = 8) -> VectorQuantizer:
    torch.manual_seed(0)
    return VectorQuantizer(num_codes, dim).eval()  # no restarts: the codebook stays as it is


def test_the_codebooks_own_vectors_come_back_with_their_ids():
    vq = quantizer()
    codes = vq.codes().detach()
    out = vq(codes[None])
    assert out.codes.dtype == torch.int64
    assert out.codes[0].tolist() == list(range(16))
    torch.testing.assert_close(out.vectors[0], codes)
    torch.testing.assert_close(vq.lookup(out.codes)[0], codes)


def test_codes_are_the_nearest_by_euclidean_distance_on_the_unit_sphere():
    vq = quantizer()
    z = torch.randn(3, 10, 8, generator=torch.Generator().manual_seed(1))
    nearest = torch.cdist(F.normalize(z, dim=-1), vq.codes().detach()[None].expand(3, -1, -1)).argmin(dim=-1)
    assert torch.equal(vq(z).codes, nearest)


def test_straight_through_gradient_reaches_the_input_as_if_quantising_were_the_identity():
    vq = quantizer()
    z = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(2), requires_grad=True)
    weights = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(3))
    (vq(z).vectors * weights).sum().backward()
    reference = z.detach().clone().requires_grad_(True)
    (F.normalize(reference, dim=-1) * weights).sum().backward()
    assert z.grad.abs().sum() > 0
    torch.testing.assert_close(z.grad, reference.grad)


def test_commitment_and_codebook_terms_match_a_hand_computation():
    vq = quantizer()
    z = torch.randn(2, 6, 8, generator=torch.Generator().manual_seed(4))
    out = vq(z)
    codes = vq.codes().detach()
    for b in range(2):
        squared = []
        for n in range(6):
            unit = z[b, n] / z[b, n].norm()
            nearest = max(range(16), key=lambda k: float(unit @ codes[k]))
            squared.append(((unit - codes[nearest]) ** 2).mean())
        expected = torch.stack(squared).mean()
        torch.testing.assert_close(out.commitment[b], expected)
        torch.testing.assert_close(out.codebook[b], expected)


def test_only_the_codebook_term_trains_the_codebook_and_only_the_commitment_the_input():
    vq = quantizer()
    z = torch.randn(2, 6, 8, generator=torch.Generator().manual_seed(5), requires_grad=True)
    vq(z).commitment.sum().backward()
    assert vq.codebook.grad is None and z.grad.abs().sum() > 0
    z.grad = None
    vq(z).codebook.sum().backward()
    assert z.grad is None and vq.codebook.grad.abs().sum() > 0


def two_code_batch(vq: VectorQuantizer) -> torch.Tensor:
    """(1, 2, C): inputs that pick codes 3 and 5 only."""
    codes = vq.codes().detach()
    return torch.stack([codes[3], codes[5] * 2.0])[None]


def test_a_batch_with_fewer_inputs_than_codes_moves_no_healthy_code():
    torch.manual_seed(0)
    vq = VectorQuantizer(256, 8).train()
    before = vq.codebook.detach().clone()
    vq(torch.randn(1, 64, 8))
    assert torch.equal(vq.codebook.detach(), before)


def test_dead_codes_are_restarted_at_inputs_of_the_batch_and_healthy_ones_stay():
    vq = quantizer().train()
    before = vq.codes().detach().clone()
    dead = [0, 7, 11]
    vq.usage[dead] = 0.0
    vq(two_code_batch(vq))
    after = vq.codes().detach()
    healthy = [k for k in range(16) if k not in dead]
    torch.testing.assert_close(after[healthy], before[healthy], rtol=0, atol=0)
    for k in dead:  # now at one of the two inputs, with the uniform share again
        assert min((after[k] - before[3]).abs().max(), (after[k] - before[5]).abs().max()) < 1e-6
    assert torch.equal(vq.usage[dead], torch.full((3,), 1 / 16))


def test_a_code_is_restarted_once_its_usage_falls_below_a_tenth_of_the_uniform_share():
    vq = quantizer().train()
    before = vq.codebook.detach().clone()
    unchosen = [k for k in range(16) if k not in (3, 5)]
    steps = math.ceil(math.log(VectorQuantizer.DEAD_SHARE) / math.log(VectorQuantizer.USAGE_DECAY))  # 230
    for _ in range(steps - 1):
        vq(two_code_batch(vq))
    assert torch.equal(vq.codebook.detach(), before)
    vq(two_code_batch(vq))
    assert not torch.equal(vq.codebook.detach()[unchosen], before[unchosen])


def test_usage_is_not_part_of_the_state_dict():
    assert "usage" not in quantizer().state_dict()


@pytest.mark.parametrize("training", [False, True])
def test_bfloat16_codebooks_quantise(training):
    vq = quantizer().to(torch.bfloat16).train(training)
    z = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(6)).to(torch.bfloat16)
    out = vq(z)
    assert out.codes.shape == (2, 5) and torch.equal(vq.nearest(F.normalize(z.float(), dim=-1)), out.codes)
    assert vq.lookup(out.codes).dtype == torch.bfloat16


def test_a_wrong_width_is_refused():
    with pytest.raises(ValueError, match="width 4"):
        quantizer()(torch.zeros(1, 2, 4))


def test_a_training_step_runs_on_shapes_alone():  # `mmmae bench memory` traces the step under FakeTensorMode
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        out = VectorQuantizer(16, 8).train()(torch.randn(2, 5, 8))
    assert out.codes.shape == (2, 5)
