"""The command line end to end, in subprocesses as a user runs it."""

import subprocess
import sys

from mmmae.cli import format_summary
from tests.conftest import MICRO_GIN


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mmmae", *args], capture_output=True, text=True, timeout=300)


def test_train_then_eval(tmp_path):
    run_dir = tmp_path / "run"
    trained = run("train", "--gin_file", MICRO_GIN, "--gin_param", "evaluations.probes = [@LinearProbe()]",
                  "--output_dir", str(run_dir))
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert f"run directory: {run_dir}" in trained.stdout
    assert "linear probe video, pretrained: test accuracy" in trained.stdout
    assert "linear probe video, random_init: test accuracy" in trained.stdout
    assert (run_dir / "model.safetensors").is_file() and (run_dir / "summary.json").is_file()

    evaluated = run("eval", "--run_dir", str(run_dir), "--random_init")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert evaluated.stdout.count("test accuracy") == 2
    assert "linear probe video, random_init: test accuracy" in evaluated.stdout


def test_summary_prints_every_probe_and_retrieval_direction_for_both_inits():
    probe = {"modality": "imu", "label": "label", "train_accuracy": 0.9, "test_accuracy": 0.8, "train_samples": 30,
             "test_samples": 12, "train_absent": 2, "test_absent": 1}
    pair = {"modalities": ["video", "audio"], "video->audio": {"R@1": 0.5, "R@5": 1.0},
            "audio->video": {"R@1": 0.25, "R@5": 0.75}, "num_samples": 8, "absent": 0,
            "chance": {"R@1": 0.125, "R@5": 0.625}, "embedding": "contrastive_video_audio"}
    summary = {"run_dir": "r", "evaluations": [
        {"kind": "linear_probe", "pretrained": probe, "random_init": probe},
        {"kind": "retrieval", "pretrained": {"video-audio": pair}, "random_init": {"video-audio": pair}},
    ]}
    lines = format_summary(summary).splitlines()
    assert lines[1] == ("linear probe imu, pretrained: test accuracy 0.800 (train 0.900; 30 train, 12 test samples, "
                        "3 without imu left out)")
    assert lines[2].startswith("linear probe imu, random_init: test accuracy 0.800")
    assert lines[3] == ("retrieval video->audio, pretrained: R@1 0.500 R@5 1.000 (chance R@1 0.125 R@5 0.625; "
                        "8 samples, 0 lacking one left out; embedding contrastive_video_audio)")
    assert lines[4].startswith("retrieval audio->video, pretrained: R@1 0.250 R@5 0.750")
    assert [line.split(":")[0] for line in lines[5:]] == ["retrieval video->audio, random_init",
                                                          "retrieval audio->video, random_init"]


def test_bad_gin_fails_with_the_binding_and_no_traceback(tmp_path):
    bad = tmp_path / "bad.gin"
    bad.write_text(f"include '{MICRO_GIN}'\npretrain.stepz = 4\n")
    result = run("train", "--gin_file", str(bad), "--output_dir", str(tmp_path / "run"))
    assert result.returncode == 1
    assert "doesn't have a parameter named 'stepz'" in result.stderr and "line 2" in result.stderr
    assert "Traceback" not in result.stderr
