"""tools/signature_study.py's report: table rows and figure files from fake run summaries."""

import importlib.util
import json
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[2] / "tools" / "signature_study.py"


@pytest.fixture(scope="module")
def study():
    spec = importlib.util.spec_from_file_location("signature_study", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_run(run_dir: Path, pretrained: float, random_init: float, n: int, seconds: float | None) -> None:
    """A finished run's files as the tool reads them: summary.json (and wall.json)."""
    run_dir.mkdir(parents=True)
    probe = {"modality": "video", "label": "label", "test_samples": n}
    summary = {"steps": 12, "evaluations": [
        {"kind": "retrieval", "pretrained": {}, "random_init": {}},
        {"kind": "linear_probe", "pretrained": {**probe, "test_accuracy": pretrained},
         "random_init": {**probe, "test_accuracy": random_init}},
    ]}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    if seconds is not None:
        (run_dir / "wall.json").write_text(json.dumps({"seconds": seconds}))


def test_table_has_a_row_per_finished_arm_with_seed_values_intervals_and_means(study, tmp_path):
    arms = {a.name: a for a in study.ARMS}
    tube, frame, video = arms["tube 0.9"], arms["frame 0.75"], arms["video only"]
    write_run(tmp_path / study.run_name(tube, 0), 0.75, 0.25, 100, 60.0)
    write_run(tmp_path / study.run_name(tube, 1), 0.65, 0.35, 100, 120.0)
    write_run(tmp_path / study.run_name(frame, 0), 0.5, 0.5, 100, None)
    records = study.collect(tmp_path, (tube, frame, video), (0, 1))
    rows = study.table(records).splitlines()[2:]
    assert len(rows) == 2  # 'video only' has no run
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert cells[0] == "tube 0.9" and cells[3] == "0, 1"
    low, high = study.wilson(0.75, 100)
    assert cells[4].startswith(f"0.750 [{low:.3f}, {high:.3f}]<br>0.650 [")
    assert cells[5] == "0.700" and cells[7] == "0.300" and cells[8] == "+0.400" and cells[9] == "1.5"
    assert [c.strip() for c in rows[1].strip("|").split("|")][9] == "–"


def test_wilson_interval_contains_the_accuracy_and_narrows_with_more_samples(study):
    small, large = study.wilson(0.6, 50), study.wilson(0.6, 5000)
    assert small[0] < large[0] < 0.6 < large[1] < small[1]


def test_figures_are_written_for_each_comparison_with_data(study, tmp_path):
    for arm in study.ARMS:
        for seed, shift in ((0, 0.0), (1, 0.02)):
            write_run(tmp_path / "runs" / study.run_name(arm, seed), 0.6 + shift, 0.3, 64, 1.0)
    written = study.figures(study.collect(tmp_path / "runs", study.ARMS, (0, 1)), tmp_path / "figures")
    names = {p.name for p in written}
    assert names == {"mask_ratio.png", "pretrained_vs_random.png", "multimodal_vs_video.png"}
    assert all(p.stat().st_size > 0 for p in written)


def test_command_names_the_recipe_seed_steps_and_probe_sizes(study, tmp_path):
    arm = next(a for a in study.ARMS if a.name == "tube 0.5")
    line = study.command(arm, 1, 30, {"train": 8, "test": 4}, tmp_path / "run")
    assert line[:4] == ["mmmae", "train", "--gin_file", arm.recipe]
    for binding in ("video/TubeMasking.ratio = 0.5", "pretrain.seed = 1", "pretrain.steps = 30",
                    "pretrain.warmup_steps = 3", "probe_test/MovingDigits.num_samples = 4"):
        assert binding in line
    assert line[-2:] == ["--output_dir", str(tmp_path / "run")]


def test_every_arm_recipe_ships_and_the_frame_arms_train_two_steps(study, tmp_path):
    from mmmae.config import parse_config
    from mmmae.train import pretrain
    from tests.test_recipes import MICRO

    root = TOOL.parents[1]
    assert all((root / arm.recipe).is_file() for arm in study.ARMS)
    arm = next(a for a in study.ARMS if a.group == "frame")
    parse_config([str(root / arm.recipe), MICRO], list(arm.bindings))
    pretrain(output_dir=str(tmp_path))
    assert [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [1, 2]
