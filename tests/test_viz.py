import pytest
import torch

from mmmae.tokenizers.patches import TARGET_NORMS
from mmmae.tokenizers.video import TubeletTokenizer
from mmmae.viz import reconstruction_panels
from tests.float32_bound import rounding_bound


@pytest.mark.parametrize("norm_target", TARGET_NORMS)
def test_a_perfect_prediction_reconstructs_the_clip_for_every_target_norm(norm_target):
    tokenizer = TubeletTokenizer(dim=8, tubelet=2, patch=4, norm_target=norm_target)
    video = torch.rand(1, 3, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    tokens = tokenizer(video)
    predict, keep = torch.arange(0, 8, 2), torch.arange(1, 8, 2)
    image, kernel, grid = tokenizer.figure_image(video)
    masked, recon = reconstruction_panels(image[0], tokens.target[0, predict], keep, predict, grid, kernel,
                                          tokenizer.figure_pixels)
    # a patch's target normalised and undone: its mean and std over 2 * 4 * 4 * 3 values, then elementwise
    torch.testing.assert_close(recon, video[0], atol=rounding_bound(video, 4, 2 * 4 * 4 * 3), rtol=0)
    assert (masked == 0).float().mean() == pytest.approx(0.5)


def test_a_wrong_prediction_shows_in_the_reconstruction():
    tokenizer = TubeletTokenizer(dim=8, tubelet=2, patch=4, norm_target="mae")
    video = torch.rand(1, 3, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    predict, keep = torch.arange(0, 8, 2), torch.arange(1, 8, 2)
    image, kernel, grid = tokenizer.figure_image(video)
    _, recon = reconstruction_panels(image[0], torch.zeros(4, 96), keep, predict, grid, kernel, tokenizer.figure_pixels)
    assert (recon - video[0]).abs().max() > 0.1
