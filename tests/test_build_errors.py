"""A recipe gin cannot build, or whose first batch its parts cannot take, stops `mmmae train` with
one message naming the binding at fault, before the run directory exists."""

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


def test_a_modality_without_a_masker_binding_says_what_to_bind(tmp_path, capsys):
    recipe = tmp_path / "two.gin"
    recipe.write_text(f"include '{MICRO_GIN}'\ninclude 'modalities/audio.gin'\n"
                      "MovingDigits.modalities = ['video', 'audio']\n"
                      "MaskedAutoencoder.modalities = [@video/Modality(), @audio/Modality()]\n")
    message = train(tmp_path, capsys, gin_file=str(recipe))
    assert "audio/Modality is built without masker: bind audio/Modality.masker" in message
    assert f'In file "{recipe.resolve()}", line 4\n    MaskedAutoencoder.modalities' in message


def test_a_masker_bound_to_none_says_what_to_bind(tmp_path, capsys):
    message = train(tmp_path, capsys, "video/Modality.masker = None")
    assert "modality 'video' has no masker: bind video/Modality.masker" in message
    assert "In --gin_param 2: video/Modality.masker = None" in message


def test_gin_call_lines_give_the_scope_of_the_binding():
    parse_config([MICRO_GIN], ["video/TubeMasking.ratio = 0.5", "audio/TubeMasking.ratio = 0.3"])
    error = ValueError("TubeMasking.ratio = 0.5: bad\n  In call to configurable 'TubeMasking' (<class 'x'>) in scope "
                       "'video'\n  In call to configurable 'pretrain' (<function pretrain>)")
    message = str(build_error(error))
    assert message == ("invalid gin config:\nTubeMasking.ratio = 0.5: bad\n"
                       "  In --gin_param 1: video/TubeMasking.ratio = 0.5")
