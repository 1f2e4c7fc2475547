"""`mmmae preflight`: before a multi-process run, check that its processes meet and agree.

Run under the same launcher as the training (``accelerate launch``, ``srun``): every process
joins the process group (within ``timeout`` seconds), passes a barrier that names the ranks
that do not, and shares its facts (:func:`facts`): host, device, mmmae version, a hash of the
installed mmmae source files (.py and .gin), git commit, Python / torch / accelerate versions
and a hash of the parsed gin config. Optionally (``data=True``) it builds ``pretrain.dataset``
and checks that the processes (and their loader workers) can split it (mmmae.data.rank_split).
Rank 0 prints one table; a mismatch or a rank that does not answer is a :class:`PreflightError`
naming the ranks and what differs.
"""

from __future__ import annotations

import datetime
import hashlib
import inspect
import json
import os
import platform
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path

import accelerate
import gin
import torch
import torch.distributed as dist
from accelerate import Accelerator, InitProcessGroupKwargs

import mmmae
from mmmae.build_errors import build_errors
from mmmae.config import ConfigError, config_difference

SOURCE_SUFFIXES = (".py", ".gin")
# The facts that must be equal on every rank, with their table headings.
AGREED = {"mmmae": "mmmae", "source": "source", "commit": "commit", "python": "python", "torch": "torch",
          "accelerate": "accelerate", "config": "config"}
SHOWN = {"rank": "rank", "host": "host", "device": "device", **AGREED}


class PreflightError(RuntimeError):
    """The processes did not meet (raised where that was seen), or differ (raised on rank 0): the
    message names the ranks and what differs."""


def source_hash(root: Path = Path(mmmae.__file__).parent) -> str:
    """sha256 (first 12 hex digits) over the installed mmmae package's .py and .gin files, paths included."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.suffix in SOURCE_SUFFIXES and "__pycache__" not in p.parts):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def git_commit(root: Path = Path(mmmae.__file__).parent) -> str:
    """The commit of the checkout mmmae is installed from ('-' outside a git checkout or without git)."""
    try:
        found = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                               text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "-"
    return found.stdout.strip() if found.returncode == 0 else "-"


def facts(accelerator: Accelerator, config: str) -> dict[str, str]:
    """This process's facts: where it runs and which code, versions and config it would train with."""
    device = str(accelerator.device)
    if accelerator.device.type == "cuda":
        device += f" ({torch.cuda.get_device_name(accelerator.device)})"
    return {"rank": str(accelerator.process_index), "host": socket.gethostname(), "device": device,
            "mmmae": mmmae.__version__, "source": source_hash(), "commit": git_commit(),
            "python": platform.python_version(), "torch": torch.__version__, "accelerate": accelerate.__version__,
            "config": hashlib.sha256(config.encode()).hexdigest()[:12], "config_text": config}


def differences(gathered: Sequence[dict[str, str]]) -> list[str]:
    """One line per fact on which some ranks differ from rank 0, naming them (the config's with its diff)."""
    lines = []
    reference = gathered[0]
    for key, heading in AGREED.items():
        odd = [f for f in gathered if f[key] != reference[key]]
        if not odd:
            continue
        ranks = ", ".join(f["rank"] for f in odd)
        if key == "config":
            first = odd[0]["rank"]
            diff = config_difference(reference["config_text"], odd[0]["config_text"], "rank 0")
            lines.append(f"{heading}: rank(s) {ranks} parsed another gin config than rank 0 (rank {first} against "
                         f"rank 0):\n{diff.replace('+++ this invocation', f'+++ rank {first}', 1)}")
        else:
            values = ", ".join(f"rank {f['rank']} {f[key]}" for f in odd)
            lines.append(f"{heading}: rank 0 has {reference[key]}, {values}")
    return lines


def table(gathered: Sequence[dict[str, str]]) -> str:
    """The facts of every rank, one row each, columns aligned."""
    rows = [list(SHOWN.values()), *[[f[key] for key in SHOWN] for f in gathered]]
    widths = [max(len(row[i]) for row in rows) for i in range(len(SHOWN))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)


def data_line(rank: int, world_size: int) -> str:
    """Build ``pretrain.dataset`` and split it as the trainer will on world_size processes (a ConfigError
    if it cannot be: too few shards for the processes' loader workers); one line describing it."""
    from mmmae.data.rank_split import own_part
    from mmmae.train import pretrain

    with build_errors():  # a binding the dataset cannot be built with: one message naming it
        data = gin.query_parameter("pretrain.dataset").scoped_configurable_fn()
    try:
        workers = gin.query_parameter("pretrain.num_workers")
    except ValueError:  # not bound: the trainer's default
        workers = inspect.signature(pretrain).parameters["num_workers"].default
    if not isinstance(data, torch.utils.data.IterableDataset):
        return f"data: {type(data).__name__}, {len(data)} samples, split by Accelerate's sampler"
    part = own_part(data, rank, world_size, workers)
    shards = getattr(getattr(data, "rows", None), "num_shards", "?")
    return (f"data: {type(data).__name__}, {shards} shards; each process reads its own, {len(part)} samples an "
            f"epoch, with {workers} loader workers")


def gathered_json(mine: dict[str, str], world_size: int, group) -> list[dict[str, str]]:
    """Every rank's facts, sent as JSON bytes in tensors (not `all_gather_object`, which unpickles what
    the other processes send)."""
    payload = torch.frombuffer(bytearray(json.dumps(mine).encode()), dtype=torch.uint8)
    sizes = [torch.zeros(1, dtype=torch.int64) for _ in range(world_size)]
    dist.all_gather(sizes, torch.tensor([payload.numel()]), group=group)
    longest = int(max(size.item() for size in sizes))
    padded = torch.zeros(longest, dtype=torch.uint8)
    padded[: payload.numel()] = payload
    received = [torch.empty(longest, dtype=torch.uint8) for _ in range(world_size)]
    dist.all_gather(received, padded, group=group)
    return [json.loads(bytes(data[: int(size.item())].tolist()).decode()) for data, size in zip(received, sizes)]


def preflight(timeout: float = 60.0, data: bool = False) -> str:
    """Meet, exchange facts and compare them (the gin config parsed); the report rank 0 prints
    ('' on other ranks). PreflightError for a rank that does not answer or any difference."""
    from mmmae.train import check_launch  # lazy, as data_line: train imports the whole model stack

    config = gin.config_str()
    kwargs = InitProcessGroupKwargs(timeout=datetime.timedelta(seconds=timeout))
    try:
        accelerator = Accelerator(kwargs_handlers=[kwargs])
    except (RuntimeError, TimeoutError) as error:  # the rendezvous or the group's connections timed out
        where = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
        raise PreflightError(f"rank {os.environ.get('RANK', '?')}: the processes did not all meet at {where} within "
                             f"{timeout:g} s (one did not start, or cannot reach the others: check the launcher's "
                             f"hosts and port, NCCL_SOCKET_IFNAME and GLOO_SOCKET_IFNAME): {error}") from None
    try:
        check_launch(accelerator)
    except ConfigError as error:
        raise PreflightError(f"rank {os.environ.get('RANK', '?')}: {error}") from None
    rank, world_size = accelerator.process_index, accelerator.num_processes
    mine = facts(accelerator, config)
    gathered = [mine]
    if world_size > 1:
        group = dist.new_group(backend="gloo", timeout=datetime.timedelta(seconds=timeout))
        try:
            dist.monitored_barrier(group, timeout=datetime.timedelta(seconds=timeout), wait_all_ranks=True)
        except RuntimeError as error:  # on rank 0: "Ranks 1, 3 failed to pass monitoredBarrier in ..."
            raise PreflightError(f"rank {rank}: not every process answered within {timeout:g} s: {error}") from None
        gathered = gathered_json(mine, world_size, group)
        total = accelerator.reduce(torch.ones((), device=accelerator.device), reduction="sum")  # the training backend
        if int(total.item()) != world_size:
            raise PreflightError(f"rank {rank}: a sum over the {world_size} processes on {accelerator.device} gave "
                                 f"{total.item():g}: the training backend ({dist.get_backend()}) does not work")
    hosts = len({f["host"] for f in gathered})
    lines = [f"{world_size} process{'es' * (world_size > 1)} on {hosts} host{'s' * (hosts > 1)} met "
             f"({dist.get_backend() if world_size > 1 else 'no process group'})", table(gathered)]
    # From here on only rank 0 reports: the others end normally, so that the launcher does not stop
    # rank 0 before it has printed; its exit status is the launcher's.
    problems = differences(gathered)
    if problems:
        problems.insert(0, "the processes differ:")
    elif data:
        try:
            lines.append(data_line(rank, world_size))
        except ConfigError as error:
            problems = [str(error)]
    if problems and rank == 0:
        raise PreflightError("\n".join([*lines, *problems]))
    return "\n".join([*lines, "all processes agree"]) if rank == 0 else ""
