"""`mmmae viz-mask`: a PNG per modality of what the recipe's maskers hide."""

import pytest
import torch
from PIL import Image

from mmmae.cli import main
from mmmae.types import MaskPlan
from mmmae.viz import masked_input
from mmmae.viz_mask import MASKED, PREDICTED, VISIBLE, token_states
from tests.test_recipes import MICRO


def test_token_states_tell_visible_predicted_and_neither():
    plan = MaskPlan(keep=torch.tensor([[0, 3]]), predict=torch.tensor([[1, 3]]))
    assert token_states(plan, 5).tolist() == [[VISIBLE, PREDICTED, MASKED, VISIBLE, MASKED]]


def test_cli_draws_every_modality_of_the_multimodal_quickstart(tmp_path, capsys):
    main(["viz-mask", "--gin_file", "recipes/quickstart.gin", "--gin_file", MICRO, "--output_dir", str(tmp_path),
          "--samples", "2"])
    names = ["video", "audio", "imu", "text"]
    assert capsys.readouterr().out.split() == [str(tmp_path / f"{m}_masks.png") for m in names]
    for name in names:
        width, height = Image.open(tmp_path / f"{name}_masks.png").size
        assert width > 50 and height > 50


def test_masked_input_blacks_out_exactly_the_tokens_outside_keep():
    video = torch.rand(3, 4, 8, 8) + 0.1  # (C, T, H, W): 2x4x4 tubelets -> grid (2, 2, 2)
    shown = masked_input(video, torch.tensor([0, 5]), grid=(2, 2, 2), kernel=(2, 4, 4))
    assert torch.equal(shown[:, :2, :4, :4], video[:, :2, :4, :4])  # token 0: t 0, h 0, w 0
    assert torch.equal(shown[:, 2:, :4, 4:], video[:, 2:, :4, 4:])  # token 5: t 1, h 0, w 1
    assert (shown != 0).sum() == 2 * 3 * 2 * 4 * 4


def test_too_many_samples_is_refused(tmp_path):
    with pytest.raises(ValueError, match="--samples must lie in 1..8"):
        main(["viz-mask", "--gin_file", "recipes/videomae.gin", "--gin_file", MICRO, "--output_dir", str(tmp_path),
              "--samples", "9"])
