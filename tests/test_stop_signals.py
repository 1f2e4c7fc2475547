"""SIGTERM / Ctrl-C: finish the step, checkpoint, say how to resume, exit 128 + signal; resume is exact."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from mmmae.checkpoint import latest_checkpoint
from mmmae.config import parse_config
from mmmae.stop_signals import SignalWatch
from mmmae.train import pretrain
from tests.conftest import MICRO_GIN

LONG_RUN = ["pretrain.steps = 60", "pretrain.save_every = 1000", "pretrain.log_every = 1"]


@pytest.fixture
def python_ctrl_c():
    """Python's own Ctrl-C handler while the test runs, whatever the runner left (a job started in the
    background by a shell, as `nohup ... &` does, inherits SIGINT ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_first_signal_is_recorded_and_a_second_stops_at_once(python_ctrl_c):
    with SignalWatch() as watch:
        signal.raise_signal(signal.SIGINT)
        assert watch.received == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_repeated_sigterm_is_ignored_and_the_checkpoint_still_comes(python_ctrl_c):
    """One preemption can deliver SIGTERM twice (Slurm, then torchrun forwarding it): the second must
    not end the process before its checkpoint; Ctrl-C after it still stops at once."""
    with SignalWatch() as watch:
        signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGTERM)
        assert watch.received == signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)


def steps_logged(run_dir) -> int:
    metrics = run_dir / "metrics.jsonl"
    return len(metrics.read_text().splitlines()) if metrics.is_file() else 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signalled_run_checkpoints_and_resumes_bitwise(tmp_path, signum):
    stopped, whole = tmp_path / "stopped", tmp_path / "whole"
    params = [w for p in LONG_RUN for w in ("--gin_param", p)]
    process = subprocess.Popen([sys.executable, "-m", "mmmae", "train", "--gin_file", MICRO_GIN, *params,
                                "--output_dir", str(stopped)], stderr=subprocess.PIPE, text=True,
                               env=dict(os.environ, OMP_NUM_THREADS="1"))
    deadline = time.monotonic() + 120
    while steps_logged(stopped) < 3 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, stderr[-2000:]
    assert "Traceback" not in stderr
    checkpoint = latest_checkpoint(stopped)
    step = json.loads((checkpoint / "trainer_state.json").read_text())["step"]
    assert 3 <= step < 60
    assert (f"\nmmmae train: stopped by {signal.Signals(signum).name} after step {step}; checkpoint {checkpoint}. "
            in stderr)
    assert "In call to configurable" not in stderr
    assert f"--output_dir {stopped} --resume" in stderr
    assert not (stopped / "model.safetensors").exists()
    if signum == signal.SIGINT:
        return  # the same path as SIGTERM from here; resuming it once is enough

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the subprocess
    try:
        parse_config([MICRO_GIN], LONG_RUN)
        pretrain(output_dir=str(stopped), resume=True)
        parse_config([MICRO_GIN], LONG_RUN)
        pretrain(output_dir=str(whole))
    finally:
        torch.set_num_threads(threads)
    expected, resumed = load_file(str(whole / "model.safetensors")), load_file(str(stopped / "model.safetensors"))
    assert all(torch.equal(expected[k], resumed[k]) for k in expected)


def test_ctrl_c_outside_the_training_steps_is_one_line_and_exit_130(monkeypatch, capsys):
    import mmmae.cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(mmmae.cli, "run_describe", interrupted)
    with pytest.raises(SystemExit) as stopped:
        mmmae.cli.main(["describe", "pretrain"])
    assert stopped.value.code == 130
    assert capsys.readouterr().err.strip() == "mmmae describe: interrupted (Ctrl-C)"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_run_with_loader_workers_stops_when_its_whole_group_is_signalled(tmp_path, signum):
    """Slurm and a terminal signal every process of the job, loader workers included: the workers
    keep serving until the main process exits, then end (they once ignored the exit-time SIGTERM
    and the run hung after its message)."""
    run = tmp_path / "run"
    params = [w for p in [*LONG_RUN, "pretrain.num_workers = 2"] for w in ("--gin_param", p)]
    process = subprocess.Popen([sys.executable, "-m", "mmmae", "train", "--gin_file", MICRO_GIN, *params,
                                "--output_dir", str(run)], stderr=subprocess.PIPE, text=True,
                               env=dict(os.environ, OMP_NUM_THREADS="1"), start_new_session=True)
    deadline = time.monotonic() + 120
    while steps_logged(run) < 3 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signum)
    try:
        _, stderr = process.communicate(timeout=60)
    finally:
        leftover = subprocess.run(["pgrep", "-g", str(process.pid)], capture_output=True, text=True).stdout.split()
        if process.poll() is None or leftover:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 128 + signum, stderr[-2000:]
    assert "\nmmmae train: stopped by" in stderr and "Traceback" not in stderr
    assert not leftover  # no worker outlives the run


def test_sigterm_outside_the_training_steps_is_one_line_and_exit_143(monkeypatch, capsys):
    import mmmae.cli

    def terminated_while_describing(args):
        signal.raise_signal(signal.SIGTERM)  # main() made SIGTERM raise: no default kill, no traceback

    monkeypatch.setattr(mmmae.cli, "run_describe", terminated_while_describing)
    previous = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(SystemExit) as stopped:
            mmmae.cli.main(["describe", "pretrain"])
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert stopped.value.code == 143
    assert capsys.readouterr().err.strip() == "mmmae describe: terminated (SIGTERM)"
