"""A recipe gin cannot build, or whose first batch its parts cannot take, stops `mmmae train` with
one message naming the binding at fault, before the run directory exists."""

import re
from pathlib import Path

import pytest

from mmmae.build_errors import build_error
from mmmae.config import parse_config
from tests.conftest import MICRO_GIN
from tests.refusal import refusal


def train(tmp_path, capsys, *params: str, gin_file: str = MICRO_GIN) -> str:
    run = tmp_path / "run"
    argv = ["train", "--gin_file", gin_file, *[w for p in ("pretrain.num_workers = 0", *params)
                                                for w in ("--gin_param", p)], "--output_dir", str(run)]
    message = refusal(argv, capsys)
    assert not run.exists()
    return message


@pytest.mark.parametrize("ratio", ["1.0", "1.5"])
def test_a_masking_ratio_out_of_range_names_its_binding(ratio, tmp_path, capsys):
    message = train(tmp_path, capsys, f"video/TubeMasking.ratio = {ratio}")
    assert f"TubeMasking.ratio = {ratio}: a masking ratio must lie strictly between 0 and 1" in message
    assert f"In --gin_param 2: video/TubeMasking.ratio = {ratio}" in message


def test_a_clip_the_patches_do_not_divide_names_the_patch_binding(tmp_path, capsys):
    message = train(tmp_path, capsys, "MovingDigits.size = 20")
    assert "H=20 is not a multiple of 8" in message
    assert f'patch set in file "{MICRO_GIN}", line 15: video/TubeletTokenizer.patch = 8' in message


def test_a_patch_bound_through_a_macro_names_where_the_macro_is_set(tmp_path, capsys):
    message = train(tmp_path, capsys, "MovingDigits.size = 18", "pretrain.steps = 2",
                    gin_file="recipes/quickstart_video.gin")
    assert "H=18 is not a multiple of 4" in message
    assert re.search(r'patch set in file "[^"]+video\.gin", line \d+: video/TubeletTokenizer\.patch = %VIDEO_PATCH, '
                     r'where file "[^"]+quickstart_video\.gin", line \d+: VIDEO_PATCH = 4\)', message)


def test_a_modality_without_a_masker_hides_nothing_so_its_reconstruction_asks_for_one(tmp_path, capsys):
    recipe = tmp_path / "two.gin"
    recipe.write_text(f"include '{MICRO_GIN}'\ninclude 'modalities/audio.gin'\n"
                      "MovingDigits.modalities = ['video', 'audio']\n"
                      "MaskedAutoencoder.modalities = [@video/Modality(), @audio/Modality()]\n"
                      "MaskedAutoencoder.objectives = [@video/Reconstruction(), @audio/Reconstruction()]\n")
    message = train(tmp_path, capsys, gin_file=str(recipe))
    assert ("audio_reconstruction: modality 'audio' is not decoded: give it a masker that hides tokens "
            "(audio/Modality.masker; none hides nothing) and a decoder") in message


def test_a_model_level_decoder_beside_a_modalitys_own_is_refused_naming_both_lines(tmp_path, capsys):
    recipe = tmp_path / "joint.gin"
    recipe.write_text("include 'recipes/tvlt.gin'\n"
                      f"include '{Path(__file__).parent / 'fixtures' / 'micro_overrides.gin'}'\n")
    message = train(tmp_path, capsys, "video/Modality.decoder = @video/MaskTokenDecoder", gin_file=str(recipe))
    assert ("MaskedAutoencoder.decoder decodes every modality, but ['video'] also have their own decoder, which would "
            "be built and never trained: bind video/Modality.decoder = None") in message
    assert "(video's decoder set in --gin_param 2: video/Modality.decoder = @video/MaskTokenDecoder)" in message
    assert re.search(r"\(model decoder set in file \"[^\"]+\.gin\", line \d+: MaskedAutoencoder\.decoder = @", message)


def test_gin_call_lines_give_the_scope_of_the_binding():
    parse_config([MICRO_GIN], ["video/TubeMasking.ratio = 0.5", "audio/TubeMasking.ratio = 0.3"])
    error = ValueError("TubeMasking.ratio = 0.5: bad\n  In call to configurable 'TubeMasking' (<class 'x'>) in scope "
                       "'video'\n  In call to configurable 'pretrain' (<function pretrain>)")
    message = str(build_error(error))
    assert message == ("invalid gin config:\nTubeMasking.ratio = 0.5: bad\n"
                       "  In --gin_param 1: video/TubeMasking.ratio = 0.5")


def test_a_required_argument_left_unbound_names_what_to_bind(tmp_path, capsys):
    message = train(tmp_path, capsys, "MaskedAutoencoder.objectives = [@video/Reconstruction(), @Classification()]")
    assert message == ("mmmae train: invalid gin config:\nClassification is built without modality, num_classes, "
                       "in_dim, which it requires: bind Classification.modality and Classification.num_classes and "
                       "Classification.in_dim\n  In --gin_param 2: MaskedAutoencoder.objectives = "
                       "[@video/Reconstruction(), @Classification()]")
