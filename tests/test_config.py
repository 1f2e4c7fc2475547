"""Gin mistakes fail before any work, naming the file, the line and the binding."""

import gin
import pytest

from mmmae.cli import main
from mmmae.config import ConfigError, parse_config
from tests.conftest import MICRO_GIN


def write(tmp_path, text: str) -> str:
    path = tmp_path / "bad.gin"
    path.write_text(f"include '{MICRO_GIN}'\n{text}\n")
    return str(path)


@pytest.mark.parametrize(
    "line, message",
    [
        ("TubeMaskin.ratio = 0.5", "No configurable matching 'TubeMaskin'"),
        ("TubeMasking.ration = 0.5", "doesn't have a parameter named 'ration'"),
        ("video/Modality.masker = @video/TubeMaskng()", "No configurable matching reference '@TubeMaskng()'"),
    ],
)
def test_unknown_configurable_or_parameter_names_file_line_and_binding(tmp_path, line, message):
    path = write(tmp_path, line)
    with pytest.raises(ConfigError) as error:
        parse_config([path])
    text = str(error.value)
    assert message in text and f'In file "{path}", line 2' in text and line.split("=")[0].strip() in text


def test_unknown_macro_names_every_use(tmp_path):
    path = write(tmp_path, "video/TubeletTokenizer.dim = %ENC_WIDTH")
    with pytest.raises(ConfigError, match=r"Macro %ENC_WIDTH is used but never defined") as error:
        parse_config([path], ["pretrain.steps = %STEPZ"])
    text = str(error.value)
    assert f'In file "{path}", line 2' in text and "video/TubeletTokenizer.dim = %ENC_WIDTH" in text
    assert "Macro %STEPZ is used but never defined.\n  In --gin_param 1: pretrain.steps = %STEPZ" in text
    assert "%ENC_DIM" not in text, "defined macros are not reported"


def test_bad_binding_on_the_command_line():
    with pytest.raises(ConfigError, match="In --gin_param 1: pretrain.stepz = 3"):
        parse_config([MICRO_GIN], ["pretrain.stepz = 3"])


def test_missing_file():
    with pytest.raises(ConfigError, match="gin file not found: nope.gin"):
        parse_config(["nope.gin"])


def test_recipes_resolve_from_the_package_folder_and_later_files_win():
    parse_config(["recipes/videomae.gin"])
    assert gin.query_parameter("video/TubeMasking.ratio") == 0.9
    assert gin.query_parameter("ENC_DIM/gin.macro.value") == 768
    parse_config(["gin/recipes/mae_st.gin", "models/small.gin"], ["video/RandomMasking.ratio = 0.8"])
    assert gin.query_parameter("ENC_DIM/gin.macro.value") == 384
    assert gin.query_parameter("video/RandomMasking.ratio") == 0.8


def test_cli_reports_config_errors_before_creating_the_run(tmp_path, capsys):
    run = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--gin_file", write(tmp_path, "Blok.dim = 3"), "--output_dir", str(run)])
    assert "No configurable matching 'Blok'" in str(exit_.value) and "line 2" in str(exit_.value)
    assert not run.exists()


def test_a_scope_nothing_is_called_under_is_refused_with_the_closest_scope():
    with pytest.raises(ConfigError) as error:
        parse_config([MICRO_GIN], ["pretrain.steps = 3", "vdieo/TubeMasking.ratio = 0.1"])
    text = str(error.value)
    assert "no configurable is ever called in scope 'vdieo'" in text
    assert "did you mean 'video/TubeMasking'?" in text
    assert "In --gin_param 2: vdieo/TubeMasking.ratio = 0.1" in text


def test_a_misspelt_scope_in_a_file_names_its_line(tmp_path):
    path = write(tmp_path, "vidoe/TubeletTokenizer.patch = 4")
    with pytest.raises(ConfigError, match="did you mean 'video/TubeletTokenizer'") as error:
        parse_config([path])
    assert f'In file "{path}", line 2\n    vidoe/TubeletTokenizer.patch = 4' in str(error.value)


def test_an_overrides_file_may_bind_scopes_of_the_package_recipes_that_this_recipe_does_not_use():
    parse_config([MICRO_GIN, "tests/fixtures/micro_overrides.gin"])  # binds audio/ and imu/ for a video recipe
    assert gin.query_parameter("audio/AudioTokenizer.target_length") == 48  # kept, not refused as a typo


def test_an_unclosed_bracket_names_the_file_and_the_line_it_opened(tmp_path):
    path = tmp_path / "bad.gin"
    path.write_text(f"include '{MICRO_GIN}'\nevaluations.probes = [\n    @LinearProbe(),\npretrain.steps = 3\n")
    with pytest.raises(ConfigError) as error:
        parse_config([str(path)])
    text = str(error.value)
    assert "bracket '[' is opened but never closed" in text and "add the matching ']'" in text
    assert f'In file "{path.resolve()}", line 2\n    evaluations.probes = [' in text
    assert "EOF in multi-line statement" not in text


def test_an_unclosed_bracket_in_a_binding_names_its_index():
    with pytest.raises(ConfigError, match=r"In --gin_param 2: pretrain.betas = \(0.9, 0.95"):
        parse_config([MICRO_GIN], ["pretrain.steps = 3", "pretrain.betas = (0.9, 0.95"])


def test_binding_mistakes_name_the_gin_param_index_not_a_file():
    with pytest.raises(ConfigError) as error:
        parse_config([MICRO_GIN], ["pretrain.steps = 3", "pretrain.stepz = 3"])
    text = str(error.value)
    assert text.startswith("invalid gin config (--gin_param 2):\n")
    assert "doesn't have a parameter named 'stepz'" in text and "In --gin_param 2: pretrain.stepz = 3" in text
    assert "micro.gin" not in text and "bindings string" not in text


def test_a_bare_word_says_how_to_write_a_value(tmp_path):
    path = write(tmp_path, "Encoder.fusion = joint")
    with pytest.raises(ConfigError, match=r"cannot read the value 'joint': write a string in quotes \('joint'\)") as e:
        parse_config([path])
    assert f'In file "{path}", line 2\n    Encoder.fusion = joint' in str(e.value)


@pytest.mark.parametrize(("binding", "hint"), [("video/TubeMaskng.ratio = 0.8", "Did you mean 'TubeMasking'"),
                                               ("video/TubeMasking.ratoi = 0.8", "Did you mean 'ratio'?")])
def test_a_misspelt_configurable_or_parameter_gets_the_closest_names(tmp_path, binding, hint):
    recipe = tmp_path / "recipe.gin"
    recipe.write_text(f"include 'recipes/quickstart_video.gin'\n{binding}\n")
    for files, params in (([str(recipe)], []), (["recipes/quickstart_video.gin"], [binding])):
        with pytest.raises(ConfigError, match=hint):
            parse_config(files, params)
