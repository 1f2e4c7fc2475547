"""Preemption trials: signal `mmmae train` at random moments, resume, compare with an uninterrupted run.

    python tools/signal_trials.py --trials 10 [--signal TERM|INT] [--steps 40] [--seed 0]

Each trial starts the micro recipe (tests/fixtures/micro.gin) for --steps steps in a subprocess,
sends the signal after a random delay (from just after start-up to past the end of training),
and checks: the exit status is 128 + signal with no traceback and a message naming the checkpoint
and the --resume command (or 0 when training had already ended; or, for a signal during
start-up, before any step, when nothing is written: death by SIGTERM, or "interrupted" and 130
for SIGINT), and that `--resume` then ends with weights bitwise equal to the uninterrupted run's.
Prints one line per trial and a summary; exit 1 if any trial fails. Runs on CPU, one thread per
process, so that runs are comparable.
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

MICRO_GIN = str(Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "micro.gin")
ENV = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")


def train(run_dir: Path, steps: int, resume: bool = False) -> subprocess.Popen:
    command = [sys.executable, "-m", "mmmae", "train", "--gin_file", MICRO_GIN,
               "--gin_param", f"pretrain.steps = {steps}", "--gin_param", "pretrain.save_every = 1000",
               "--output_dir", str(run_dir)] + (["--resume"] if resume else [])
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV)


def finished(process: subprocess.Popen) -> str:
    _, stderr = process.communicate(timeout=600)
    if process.returncode != 0:
        raise RuntimeError(f"exit {process.returncode}: {stderr[-800:]}")
    return stderr


def same_weights(a: Path, b: Path) -> bool:
    x, y = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def trial(root: Path, reference: Path, steps: int, signum: int, delay: float) -> tuple[bool, str]:
    """One signalled run and its resume: (passed, what happened)."""
    run = root / f"run_{delay:.2f}"
    process = train(run, steps)
    time.sleep(delay)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=600)
    message = [line for line in stderr.splitlines() if line.startswith("mmmae train: stopped by")]
    if process.returncode == 0:
        stopped = "finished before the signal"
    elif (process.returncode in (-signum, 128 + signum) and "Traceback" not in stderr
          and not (run / "checkpoints").exists()):
        stopped = "stopped during start-up, before any step (nothing written to lose)"
        finished(train(run, steps, resume=True))  # --resume without a checkpoint starts afresh
    elif process.returncode == 128 + signum and "Traceback" not in stderr and message:
        stopped = message[0].split(". To continue")[0].removeprefix("mmmae train: ")
        finished(train(run, steps, resume=True))
    else:
        return False, f"exit {process.returncode}: {stderr.strip()[-300:]}"
    return same_weights(run, reference), stopped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--signal", choices=["TERM", "INT"], default="TERM")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    signum = signal.Signals[f"SIG{args.signal}"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tic = time.perf_counter()
        finished(train(root / "reference", args.steps))
        whole = time.perf_counter() - tic
        delays = np.random.default_rng(args.seed).uniform(0.3 * whole, 1.1 * whole, args.trials)
        passed = 0
        for number, delay in enumerate(sorted(delays), 1):
            ok, what = trial(root, root / "reference", args.steps, signum, float(delay))
            passed += ok
            print(f"trial {number}: SIG{args.signal} after {delay:.1f} s of a {whole:.1f} s run: {what}; "
                  f"resumed weights {'bitwise equal' if ok else 'DIFFER'}", flush=True)
    print(f"{passed} of {args.trials} trials passed")
    sys.exit(0 if passed == args.trials else 1)


if __name__ == "__main__":
    main()
