"""`mmmae describe`: a configurable's parameters, defaults, docstring and gin bindings; typos get suggestions."""

import re
import subprocess
import sys

import pytest

from mmmae.cli import main
from mmmae.config import GIN_DIR


def describe(capsys, *args: str) -> str:
    main(["describe", *args])
    return capsys.readouterr().out


def refusal(*args: str) -> str:
    with pytest.raises(SystemExit) as stop:
        main(["describe", *args])
    return str(stop.value.code)


def parameter_names(text: str) -> list[str]:
    block = text.split("parameters:\n", 1)[1].split("\n\n", 1)[0]
    return [line.split(":")[0].split()[0] for line in block.splitlines()]


def test_time_frequency_masking_takes_time_and_freq_ratio_not_ratio(capsys):
    text = describe(capsys, "TimeFrequencyMasking")
    assert parameter_names(text) == ["time_ratio", "freq_ratio"]
    assert "time_ratio: float  (default 0.2)" in text
    assert "AudioMAE's 2-D masking" in text  # the docstring


def test_a_typo_is_refused_with_the_closest_names_exit_1():
    result = subprocess.run([sys.executable, "-m", "mmmae", "describe", "TimeFrequncyMasking"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("mmmae describe: no configurable named 'TimeFrequncyMasking': "
                                            "did you mean 'TimeFrequencyMasking'")


def test_the_bindings_listed_are_the_real_file_and_line(capsys):
    text = describe(capsys, "video/TubeMasking")
    listed = re.findall(r"^  (gin/\S+\.gin):(\d+): (.+)$", text, re.M)
    assert ("gin/recipes/videomae.gin", "7", "video/TubeMasking.ratio = 0.9") in listed
    for path, line, binding in listed:
        assert (GIN_DIR.parent / path).read_text().splitlines()[int(line) - 1].strip() == binding
        assert binding.startswith(("video/TubeMasking.", "TubeMasking.", "video/mmmae.TubeMasking."))


def test_a_scope_shows_only_its_bindings_and_a_misspelt_scope_gets_a_suggestion(capsys):
    video = describe(capsys, "video/Modality")
    assert "video/Modality.name = 'video'" in video and "audio/Modality.name" not in video
    assert refusal("vdieo/TubeMasking") == ("mmmae describe: no gin file binds TubeMasking under the scope 'vdieo': "
                                            "did you mean 'video/TubeMasking'?")


def test_a_module_qualified_name_and_a_function(capsys):
    assert parameter_names(describe(capsys, "mmmae.TubeMasking")) == ["ratio"]
    text = describe(capsys, "pretrain")
    names = parameter_names(text)
    assert names[:2] == ["model", "dataset"] and "output_dir" not in names and "resume" not in names
    assert re.search(r"^  model: .*\(required\)$", text, re.M)
    assert re.search(r"^  batch_size: int  \(default 32\)$", text, re.M)


def test_no_name_lists_every_configurable_by_kind(capsys):
    text = describe(capsys)
    kinds = re.findall(r"^(\w+):$", text, re.M)
    assert {"masking", "tokenizers", "objectives", "train"} <= set(kinds)
    masking = text.split("\nmasking:\n", 1)[1].split("\n\n", 1)[0]
    assert re.search(r"^  TimeFrequencyMasking \(mmmae\.masking\.spectro\): AudioMAE's 2-D masking", masking, re.M)
