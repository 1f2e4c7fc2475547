"""FSDP against DDP on 2 CPU processes (gloo): step time and memory per rank, at ViT-S and ViT-B.

    OMP_NUM_THREADS=1 python tools/fsdp_bench.py [--sizes small base] [--steps 4] [--frames 16] [--pixels 112]
                                                 [--batch 2] [--recipe recipes/videomae.gin]

For each model size and strategy, launches 2 processes (torchrun --standalone) that build the
recipe's model at that size (gin/models/<size>.gin) on MovingDigits clips of `frames` x `pixels`^2,
then either shard it as `mmmae train` does under tools/accelerate/fsdp_full_shard.yaml
(mmmae.sharding.shard_on_cpu: every transformer block a unit, the root the rest) or wrap it in
DDP through Accelerate's prepare (as under cpu_2proc.yaml), and time `steps` AdamW steps on one
fixed batch of `batch` clips per process after a warm-up step. Per rank: the median step time,
the model state it holds (parameters, gradients and AdamW moments: local shards under FSDP; DDP's
reducer buckets, a second copy of the gradients, not counted), and
the peak resident memory of the process over the timed steps (VmHWM, reset after the warm-up step
and after freed memory went back to the system: libraries, model state, DDP's buckets, activations
and FSDP's gathered blocks; not the unsharded model each rank builds before sharding it). Prints
one table with FSDP / DDP ratios from the same invocation.
"""

import argparse
import ctypes
import gc
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def local_bytes(tensors) -> int:
    """Bytes this process holds of `tensors` (a DTensor's local shard; FSDP's padding not counted)."""
    from torch.distributed.tensor import DTensor

    return sum((t.to_local() if isinstance(t, DTensor) else t).numel() * t.element_size() for t in tensors)


def status_kib(field: str) -> int:
    """A memory figure of this process from /proc/self/status (Linux), in KiB."""
    return int(re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE).group(1))


def reset_resident_peak() -> None:
    """Return freed memory to the system (glibc malloc_trim: the unsharded model FSDP replaced), then
    restart the resident high-water mark (VmHWM) from the current resident size."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")


def worker(args: argparse.Namespace) -> None:
    """One rank: build, shard or wrap, time the steps, and (rank 0) write every rank's figures."""
    import torch
    from accelerate import Accelerator

    from mmmae.check import _reference, first_batch
    from mmmae.config import parse_config
    from mmmae.masking.rng import MaskRNG
    from mmmae.sharding import shard_on_cpu

    accelerator = Accelerator(cpu=True)
    parse_config([args.recipe, f"models/{args.model}.gin"],
                 [f"MovingDigits.frames = {args.frames}", f"MovingDigits.size = {args.pixels}",
                  f"MovingDigits.digit_size = {args.pixels * 3 // 8}"])
    torch.manual_seed(0)
    model = _reference("pretrain.model")()
    batch, _ = first_batch(_reference("pretrain.dataset")(), args.batch)
    sharded = shard_on_cpu(accelerator, model, "no")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    if sharded:
        optimizer = accelerator.prepare(optimizer)
    else:
        model, optimizer = accelerator.prepare(model, optimizer)
    times = []
    for step in range(args.steps + 1):
        if step == 1:  # after the warm-up step (which allocates gradients, AdamW's moments, DDP's buckets)
            reset_resident_peak()
        tic = time.perf_counter()
        out = model(batch, MaskRNG.seeded(step, "cpu", accelerator.process_index, accelerator.num_processes, step))
        accelerator.backward(out.loss)
        optimizer.step()
        held = local_bytes([*model.parameters(), *(p.grad for p in model.parameters() if p.grad is not None),
                            *(v for s in optimizer.optimizer.state.values() for v in s.values() if v.dim())])
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - tic)
    figures = {"step_s": statistics.median(times[1:]), "state_mb": held / 2**20,
               "peak_rss_mb": status_kib("VmHWM") / 1024, "sharded": sharded}
    gathered = [None] * accelerator.num_processes
    torch.distributed.all_gather_object(gathered, figures)
    if accelerator.is_main_process:
        Path(args.out).write_text(json.dumps(gathered))
    accelerator.end_training()


def run(model: str, strategy: str, args: argparse.Namespace, out: Path) -> list[dict]:
    """Every rank's figures of one 2-process run."""
    env = dict(os.environ, ACCELERATE_USE_CPU="1", OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"),
               PYTHONPATH=str(ROOT), ACCELERATE_USE_FSDP="true" if strategy == "fsdp" else "false")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", __file__,
               "--worker", "--model", model, "--out", str(out), "--recipe", args.recipe, "--steps", str(args.steps),
               "--frames", str(args.frames), "--pixels", str(args.pixels), "--batch", str(args.batch)]
    result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"{model} {strategy} failed:\n{result.stderr[-3000:]}")
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["small", "base"])
    parser.add_argument("--recipe", default="recipes/videomae.gin")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--pixels", type=int, default=112)
    parser.add_argument("--batch", type=int, default=2, help="clips per process")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    print(f"{args.recipe}, {args.frames} frames at {args.pixels} px, {args.batch} clips per process, 2 CPU processes "
          f"(gloo, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '1')}), median of {args.steps} steps")
    print(f"{'model':6} {'strategy':8} {'step s':>7} {'state MB/rank':>14} {'peak RSS MB/rank':>17}")
    with tempfile.TemporaryDirectory() as folder:
        for model in args.sizes:
            figures = {s: run(model, s, args, Path(folder) / f"{model}_{s}.json") for s in ("ddp", "fsdp")}
            assert figures["fsdp"][0]["sharded"] and not figures["ddp"][0]["sharded"]
            mean = {s: {k: statistics.mean(r[k] for r in ranks) for k in ("step_s", "state_mb", "peak_rss_mb")}
                    for s, ranks in figures.items()}
            for strategy, m in mean.items():
                print(f"{model:6} {strategy:8} {m['step_s']:7.2f} {m['state_mb']:14.0f} {m['peak_rss_mb']:17.0f}")
            print(f"{model:6} {'fsdp/ddp':8} " + " ".join(f"{mean['fsdp'][k] / mean['ddp'][k]:{w}.2f}" for k, w in
                                                           (("step_s", 7), ("state_mb", 14), ("peak_rss_mb", 17))))


if __name__ == "__main__":
    main()
