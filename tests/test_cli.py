"""The command line end to end, in subprocesses as a user runs it."""

import subprocess
import sys

from tests.conftest import MICRO_GIN


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mmmae", *args], capture_output=True, text=True, timeout=300)


def test_train_then_eval(tmp_path):
    run_dir = tmp_path / "run"
    trained = run("train", "--gin_file", MICRO_GIN, "--gin_param", "pretrain.probe = @LinearProbe()",
                  "--output_dir", str(run_dir))
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert f"run directory: {run_dir}" in trained.stdout
    assert "linear probe, pretrained: test accuracy" in trained.stdout
    assert "linear probe, random_init: test accuracy" in trained.stdout
    assert (run_dir / "model.safetensors").is_file() and (run_dir / "summary.json").is_file()

    evaluated = run("eval", "--run_dir", str(run_dir), "--random_init")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert evaluated.stdout.count("test accuracy") == 2


def test_bad_gin_fails_with_the_binding_and_no_traceback(tmp_path):
    bad = tmp_path / "bad.gin"
    bad.write_text(f"include '{MICRO_GIN}'\npretrain.stepz = 4\n")
    result = run("train", "--gin_file", str(bad), "--output_dir", str(tmp_path / "run"))
    assert result.returncode == 1
    assert "doesn't have a parameter named 'stepz'" in result.stderr and "line 2" in result.stderr
    assert "Traceback" not in result.stderr
