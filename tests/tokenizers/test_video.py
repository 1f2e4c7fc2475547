"""Tubelet and frame tokenizers: shapes, targets against a hand computation, size errors."""

import pytest
import torch

from mmmae.tokenizers.frames import FrameTokenizer
from mmmae.tokenizers.patches import patch_targets
from mmmae.tokenizers.video import TubeletTokenizer
from tests.float32_bound import rounding_bound


def test_tubelet_shapes():
    tokens = TubeletTokenizer(dim=24, tubelet=2, patch=8)(torch.rand(2, 3, 4, 16, 24))
    assert tokens.grid == (2, 2, 3)
    assert tokens.embed.shape == (2, 12, 24)
    assert tokens.target.shape == (2, 12, 2 * 8 * 8 * 3)


def test_normalized_target_matches_hand_computation():
    video = torch.rand(1, 3, 4, 16, 16)
    target = patch_targets(video, (2, 8, 8), normalize=True)
    # token (t'=1, h'=0, w'=1) -> index 1*4 + 0*2 + 1 = 5; its pixels, layout (p0 p1 p2) c
    cube = video[0, :, 2:4, 0:8, 8:16]  # (C, 2, 8, 8)
    pixels = cube.permute(1, 2, 3, 0).reshape(-1, 3)  # (128, C)
    expected = (pixels - pixels.mean(0)) / (pixels.std(0, unbiased=True) + 1e-6)
    # the patch's mean and std over its 128 pixels, then subtract and divide: 3 stages of at most 128 terms
    assert torch.allclose(target[0, 5], expected.reshape(-1), atol=rounding_bound(expected, 3, 128), rtol=0)
    assert torch.allclose(patch_targets(video, (2, 8, 8), normalize=False)[0, 5], pixels.reshape(-1))


def test_normalized_targets_are_differentiable_in_the_pixels():
    video = torch.rand(1, 3, 4, 16, 16, dtype=torch.float64, requires_grad=True)
    for normalize in (True, "mae"):
        assert torch.autograd.gradcheck(lambda v: patch_targets(v, (2, 8, 8), normalize=normalize), (video,))


def test_tokenizer_target_option():
    video = torch.rand(1, 3, 2, 8, 8)
    raw = TubeletTokenizer(dim=8, tubelet=2, patch=8, norm_target=False)(video).target
    assert torch.allclose(raw, patch_targets(video, (2, 8, 8), normalize=False))


def test_frame_tokenizer_equals_tubelet_of_one_frame_with_the_same_weights():
    frames, tubelets = FrameTokenizer(dim=16, patch=4), TubeletTokenizer(dim=16, tubelet=1, patch=4)
    with torch.no_grad():
        tubelets.proj.weight.copy_(frames.proj.weight[:, :, None])
        tubelets.proj.bias.copy_(frames.proj.bias)
    video = torch.rand(2, 3, 3, 8, 8)
    a, b = frames(video), tubelets(video)
    assert a.grid == b.grid == (3, 2, 2)
    # a 2-D and a 3-D convolution over the same 3 * 4 * 4 = 48 products, plus the positions
    assert torch.allclose(a.embed, b.embed, atol=rounding_bound(b.embed, 2, 48), rtol=0)
    assert torch.equal(a.target, b.target)


def test_frame_tokenizer_takes_images():
    tokens = FrameTokenizer(dim=16, patch=4)(torch.rand(2, 3, 8, 12))
    assert tokens.grid == (2, 3) and tokens.embed.shape == (2, 6, 16) and tokens.target.shape == (2, 6, 48)


@pytest.mark.parametrize(
    "shape, message",
    [((1, 3, 5, 16, 16), "T=5 is not a multiple of 2"), ((1, 3, 4, 16, 20), "W=20 is not a multiple of 8")],
)
def test_sizes_that_do_not_divide_are_named(shape, message):
    with pytest.raises(ValueError, match=message):
        TubeletTokenizer(dim=8, tubelet=2, patch=8)(torch.rand(shape))
