"""Preemption: SIGTERM (Slurm, `kill`) or Ctrl-C asks a run to stop after its current step.

The first signal is recorded and the trainer finishes the step, writes a checkpoint and raises
:class:`StopRequested`; the CLI prints where the checkpoint is and how to resume, and exits with
128 + the signal's number (143 for SIGTERM, 130 for Ctrl-C), which Slurm's requeue understands.
A second Ctrl-C stops at once; a repeated SIGTERM is ignored (under Slurm and torchrun one
preemption reaches a process twice: from Slurm and forwarded by torchrun). Outside the steps,
the CLI ends a command on SIGTERM or Ctrl-C with one line ("terminated", "interrupted") and 143 / 130.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
from pathlib import Path

import torch
from accelerate import Accelerator

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequested(Exception):
    """A run stopped on a signal after writing `checkpoint` at `step`."""

    def __init__(self, signum: int, step: int, checkpoint: Path):
        super().__init__(f"stopped by {signal.Signals(signum).name} after step {step}; checkpoint {checkpoint}")
        self.signum, self.step, self.checkpoint = signum, step, checkpoint

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class Terminated(Exception):
    """SIGTERM outside the training steps (start-up, evaluations): the command ends with one line, exit 143."""


def raise_on_sigterm() -> None:
    """Make SIGTERM raise Terminated in this process (a SignalWatch takes over during the training steps)."""

    def terminated(signum: int, frame) -> None:
        raise Terminated

    signal.signal(signal.SIGTERM, terminated)


class SignalWatch:
    """Within `with`: the first SIGTERM/SIGINT is recorded in `received`. A later SIGINT (a person
    pressing Ctrl-C again) restores the previous handlers and re-raises itself (KeyboardInterrupt:
    stop at once, no checkpoint); a later SIGTERM is ignored, as one preemption can deliver it twice
    (Slurm signals every task and torchrun forwards its own). Outside the main thread, where Python
    cannot install handlers, it watches nothing."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.previous: dict[int, object] = {}

    def __enter__(self) -> SignalWatch:
        if threading.current_thread() is threading.main_thread():
            self.previous = {signum: signal.signal(signum, self._handle) for signum in STOP_SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        self._restore()

    def _restore(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous = {}

    def _handle(self, signum: int, frame) -> None:
        if self.received is not None:
            if signum == signal.SIGTERM:
                return
            self._restore()
            signal.raise_signal(signum)
            return
        self.received = signum
        print(f"\nreceived {signal.Signals(signum).name}: stopping after this step with a checkpoint "
              "(Ctrl-C again stops at once, without one)", file=sys.stderr, flush=True)

    def requested(self, accelerator: Accelerator) -> int | None:
        """The signal any process received (all processes agree, so that they stop at the same step)."""
        received = self.received or 0
        if accelerator.num_processes > 1:
            flag = torch.tensor([received], device=accelerator.device)
            received = int(accelerator.gather(flag).max().item())
        return received or None


class WorkerSignals:
    """A DataLoader ``worker_init_fn``: the workers' part in a clean stop.

    SIGINT is ignored (a terminal sends Ctrl-C to the whole group; the main process stops the run).
    SIGTERM (Slurm signals every process of a job) is ignored while the run goes on, so that a
    worker still delivers the batch the main process may be waiting for as it finishes its step,
    and obeyed (a clean exit) once the main process is exiting: multiprocessing ends daemonic
    workers with SIGTERM at interpreter exit and waits for them, which an ignoring worker would
    never answer. The flag is shared memory, set by an exit hook that runs before
    multiprocessing's (exit hooks run last-registered first)."""

    def __init__(self) -> None:
        self.exiting = torch.zeros((), dtype=torch.bool).share_memory_()
        atexit.register(self.exiting.fill_, True)

    def __call__(self, worker_id: int) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum: int, frame) -> None:
        if bool(self.exiting):
            os._exit(0)
