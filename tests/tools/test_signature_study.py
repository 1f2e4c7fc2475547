"""tools/signature_study.py's report: table rows, fits and figure files from fake run summaries."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

TOOL = Path(__file__).resolve().parents[2] / "tools" / "signature_study.py"


@pytest.fixture(scope="module")
def study():
    spec = importlib.util.spec_from_file_location("signature_study", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_run(run_dir: Path, pretrained: float, random_init: float, n: int, seconds: float | None,
              steps: int = 12, loss: float = 0.9) -> None:
    """A finished run's files as the tool reads them: summary.json (and wall.json)."""
    run_dir.mkdir(parents=True)
    probe = {"modality": "video", "label": "label", "test_samples": n}
    summary = {"steps": steps, "loss_end": loss, "evaluations": [
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
            write_run(tmp_path / "runs" / study.run_name(arm, seed), 0.6 + shift, 0.3, 64, 1.0, arm.steps)
    written = study.figures(study.collect(tmp_path / "runs", study.ARMS, (0, 1)), tmp_path / "figures")
    names = {p.name for p in written}
    assert names == {"mask_ratio.png", "pretrained_vs_random.png", "multimodal_vs_video.png", "length.png"}
    assert all(p.stat().st_size > 0 for p in written)


def test_a_ratio_panel_needs_two_ratios_at_one_length(study, tmp_path):
    arms = {a.name: a for a in study.ARMS}
    for name in ("tube 0.5", "tube 0.9", "tube 0.9 1000 steps", "frame 0.5"):
        write_run(tmp_path / study.run_name(arms[name], 0), 0.6, 0.3, 64, 1.0, arms[name].steps)
    records = study.collect(tmp_path, tuple(arms.values()), (0,))
    assert study.ratio_panels(records) == [("tube", 300)]
    assert list(study.lengths(records)) == ["tube 0.9"]


def line_of_runs(study, tmp_path, intercept: float, slope: float, fixed: float, per_step: float) -> list[dict]:
    """The 'tube 0.9' setting at 300/1000/3000 steps, seeds 0 and 1, whose gain over random init
    is exactly intercept + slope x log10(steps) and wall time fixed + per_step x steps."""
    arms = [a for a in study.ARMS if a.group == "tube" and a.ratio == 0.9]
    for arm in arms:
        for seed, random_init in ((0, 0.5), (1, 0.25)):
            gain = intercept + slope * np.log10(arm.steps)
            write_run(tmp_path / study.run_name(arm, seed), random_init + gain, random_init, 1024,
                      fixed + per_step * arm.steps, arm.steps, loss=1.0 - arm.steps / 1e4)
    return study.collect(tmp_path, tuple(arms), (0, 1))


def test_length_fit_recovers_the_line_and_where_it_reaches_the_target(study, tmp_path):
    records = line_of_runs(study, tmp_path, intercept=-0.1, slope=0.05, fixed=60.0, per_step=0.2)
    fit = study.length_fit(study.lengths(records)["tube 0.9"])
    close = {"rel": 1e-9, "abs": 1e-12}  # float64 rounding of a least-squares solve on exact data
    assert fit["slope"] == pytest.approx(0.05, **close) and fit["intercept"] == pytest.approx(-0.1, **close)
    assert fit["slope_stderr"] == pytest.approx(0.0, **close)
    assert fit["target_steps"] == pytest.approx(10 ** ((study.TARGET_GAIN + 0.1) / 0.05), rel=1e-6)
    steps = 2 * (300 + 1000 + 3000)
    assert fit["seconds_per_step"] == pytest.approx((6 * 60.0 + 0.2 * steps) / steps, rel=1e-12)


def test_length_fit_of_a_falling_gain_never_reaches_the_target(study, tmp_path):
    records = line_of_runs(study, tmp_path, intercept=0.1, slope=-0.01, fixed=0.0, per_step=1.0)
    fit = study.length_fit(study.lengths(records)["tube 0.9"])
    assert fit["target_steps"] == float("inf")
    assert "never reaches" in study.length_table(records)


def test_length_table_has_a_row_per_length_with_gains_losses_and_the_fit(study, tmp_path):
    records = line_of_runs(study, tmp_path, intercept=-0.1, slope=0.05, fixed=60.0, per_step=0.2)
    markdown = study.length_table(records)
    rows = [line for line in markdown.splitlines() if line.startswith("| tube 0.9 |")]
    assert [row.split("|")[2].strip() for row in rows] == ["300", "1000", "3000"]
    cells = [c.strip() for c in rows[2].strip("|").split("|")]
    gain = -0.1 + 0.05 * np.log10(3000)
    assert cells[2] == "0, 1" and cells[5] == f"{gain:+.3f}, {gain:+.3f}" and cells[6] == f"{gain:+.3f}"
    assert cells[7] == "0.700, 0.700" and cells[8] == f"{(60 + 0.2 * 3000) / 60:.1f}"
    target = 10 ** ((study.TARGET_GAIN + 0.1) / 0.05)
    seconds_per_step = (6 * 60.0 + 0.2 * 2 * 4300) / (2 * 4300)  # the six runs' wall time over their steps
    hours = target * seconds_per_step / 3600
    assert f"reaches +{study.TARGET_GAIN} at {target:.3g} steps, {hours:.3g} hours" in markdown


def test_run_log_has_one_line_per_run_with_intervals(study, tmp_path):
    records = line_of_runs(study, tmp_path, intercept=0.0, slope=0.05, fixed=60.0, per_step=0.2)
    lines = [json.loads(line) for line in study.run_log(records).splitlines()]
    assert len(lines) == len(records) == 6
    first = lines[0]
    assert first["arm"] == "tube 0.9" and first["seed"] == 0 and first["steps"] == 300
    assert first["pretrained_ci"] == study.wilson(first["pretrained"], 1024)
    assert first["random_init_ci"] == study.wilson(0.5, 1024) and first["loss_end"] == pytest.approx(0.97)


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
