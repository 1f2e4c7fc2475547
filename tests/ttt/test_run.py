"""`mmmae ttt`: the files it writes, and one clean message for each mistake."""

import json
from pathlib import Path

import pytest

from mmmae.cli import main
from tests.conftest import MICRO_GIN
from tests.refusal import refusal

MICRO = str(Path(__file__).parents[1] / "fixtures" / "micro_overrides.gin")
SHORT = ["--gin_param", "train/MovingDigits.num_samples = 6", "--gin_param", "test_time_train.window = 2"]


def train(folder: Path, gin_file: str) -> Path:
    run = folder / "run"
    main(["train", "--gin_file", gin_file, "--gin_file", MICRO, "--gin_param", "pretrain.steps = 2",
          "--output_dir", str(run)])
    return run


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A two-step micro run of the Y-shaped recipe."""
    return train(tmp_path_factory.mktemp("ttt"), "recipes/ttt_mae.gin")


def test_ttt_writes_a_record_per_item_a_summary_and_the_config(trained, tmp_path, capsys):
    out = tmp_path / "ttt"
    main(["ttt", "--model", str(trained), "--output_dir", str(out), *SHORT, "--gin_param",
          "test_time_train.parts = 2", "--gin_param", "test_time_train.memory = 'reset'"])
    records = [json.loads(line) for line in (out / "ttt.jsonl").read_text().splitlines()]
    assert [r["item"] for r in records] == list(range(6)) and records[-1]["drift"] == 1.0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["memory"] == "reset" and summary["settings"]["window"] == 2
    assert summary["stream"]["ttt"]["accuracy"] == sum(r["ttt_correct"] for r in records) / 6
    assert [p["items"] for p in summary["parts"]] == [3, 3]
    config = (out / "config.gin").read_text()  # the stream's clips are the model's training clips, held out
    assert "test_time_train.window = 2" in config and "train/MovingDigits.split = 'test'" in config
    assert "train/MovingDigits.size = 16" in config and "train/MovingDigits.frames = 4" in config
    printed = capsys.readouterr().out
    assert "reset memory, 1 step per item" in printed and "stream" in printed


def test_a_missing_model_is_one_message(tmp_path, capsys):
    message = refusal(["ttt", "--model", str(tmp_path / "nowhere"), "--output_dir", str(tmp_path / "o")], capsys)
    assert message.startswith("mmmae ttt: ") and "nowhere" in message and "model-zoo name" in message


def test_a_stream_shorter_than_the_window_is_one_message(trained, tmp_path, capsys):
    message = refusal(["ttt", "--model", str(trained), "--output_dir", str(tmp_path / "o"), "--gin_param",
                       "train/MovingDigits.num_samples = 4"], capsys)
    assert message == ("mmmae ttt: the stream has 4 items, fewer than test_time_train.window = 8: lengthen the stream "
                       "(train/MovingDigits.num_samples in eval/ttt.gin) or shorten the window")
    assert not (tmp_path / "o").exists()


def test_an_existing_output_is_not_overwritten(trained, tmp_path, capsys):
    out = tmp_path / "o"
    main(["ttt", "--model", str(trained), "--output_dir", str(out), *SHORT, "--gin_param", "test_time_train.steps = 0"])
    before = (out / "summary.json").read_text()
    message = refusal(["ttt", "--model", str(trained), "--output_dir", str(out), *SHORT], capsys)
    assert message == f"mmmae ttt: {out} already holds a test-time training run (summary.json): choose another " \
                      "--output_dir"
    assert (out / "summary.json").read_text() == before


def test_a_model_without_a_task_head_is_one_message(tmp_path, capsys):
    run = train(tmp_path, MICRO_GIN)
    message = refusal(["ttt", "--model", str(run), "--output_dir", str(tmp_path / "o"), *SHORT], capsys)
    assert message.startswith("mmmae ttt: the model has no task head") and "ttt_mae.gin" in message


@pytest.mark.parametrize("binding, expected", [
    ("test_time_train.memory = 'forget'", "test_time_train.memory = 'forget': one of ('implicit', 'reset')"),
    ("test_time_train.parts = 0", "test_time_train.parts = 0: the stream is scored in at least 1 part"),
])
def test_a_bad_setting_is_one_message(trained, tmp_path, capsys, binding, expected):
    message = refusal(["ttt", "--model", str(trained), "--output_dir", str(tmp_path / "o"), *SHORT, "--gin_param",
                       binding], capsys)
    assert message == f"mmmae ttt: {expected}"


def test_an_encoder_only_export_is_refused(trained, tmp_path, capsys):
    export = tmp_path / "encoder"
    main(["export", "--src", str(trained), "--dst", str(export), "--encoder_only"])
    capsys.readouterr()
    message = refusal(["ttt", "--model", str(export), "--output_dir", str(tmp_path / "o"), *SHORT], capsys)
    assert message.startswith(f"mmmae ttt: {export} is an encoder-only export: its task head")
    assert not (tmp_path / "o").exists()


def test_the_walk_continues_from_the_models_trained_step(trained, tmp_path):
    main(["ttt", "--model", str(trained), "--output_dir", str(tmp_path / "o"), *SHORT])
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["settings"]["trained_steps"] == 2
