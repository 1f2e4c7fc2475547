"""Helper for tests/objectives/test_contrastive.py, run by `accelerate launch` with 2 CPU processes.

Each process takes its half of a fixed global batch as leaf tensors, computes the contrastive loss
(local rows, negatives gathered from both processes) and backpropagates; it saves its loss, the
gradients w.r.t. its half of the inputs and w.r.t. the objective's parameters to <out_dir>/rank<r>.pt.
It does this twice: with the objective as written, and with the gather swapped for one that carries
no gradient to the other process (`detached_all_gather`), which the test must be able to tell apart.
"""

import sys
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.distributed as dist

import mmmae.objectives.contrastive as contrastive
from mmmae.objectives.contrastive import Contrastive

WORLD, LOCAL_B, TOKENS, WIDTH = 2, 4, 3, 8
ABSENT = {"video": [6], "imu": [1]}  # global sample indices; one per process keeps the usable counts equal


def build() -> tuple[Contrastive, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The objective (seeded head and learnable temperature), the global encodings and presence."""
    torch.manual_seed(0)
    objective = Contrastive(modalities=("video", "imu"), in_dim=WIDTH, proj_dim=6, temperature=0.2)
    encoded = {m: torch.randn(WORLD * LOCAL_B, TOKENS, WIDTH) for m in objective.modalities}
    present = {m: torch.ones(WORLD * LOCAL_B, dtype=torch.bool) for m in objective.modalities}
    for m, indices in ABSENT.items():
        present[m][indices] = False
    return objective, encoded, present


def loss_and_grads(objective: Contrastive, encoded: dict, present: dict) -> dict[str, torch.Tensor]:
    """Forward and backward on the given rows; the loss, input gradients and parameter gradients."""
    objective.zero_grad()
    leaves = {m: x.clone().requires_grad_() for m, x in encoded.items()}
    outputs = {m: SimpleNamespace(encoded=leaves[m], present=present[m], mask=None) for m in leaves}
    loss, _ = objective(outputs, {"index": torch.arange(len(present["video"]))})
    loss.backward()
    result = {"loss": loss.detach()}
    result.update({f"input.{m}": x.grad for m, x in leaves.items()})
    result.update({f"param.{n}": p.grad.clone() for n, p in objective.named_parameters()})
    return result


def detached_all_gather(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The classic mistake: other processes' rows as constants, only the local slot differentiable."""
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.detach().contiguous())
    parts[dist.get_rank()] = x
    return tuple(parts)


def run_rank(out_dir: Path, build, loss_and_grads) -> None:
    """This process's half of `build()`'s global batch through `loss_and_grads`, with the gather as
    written and detached, saved to out_dir/rank<r>.pt (also the NT-Xent helper's body)."""
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    assert accelerator.num_processes == WORLD and dist.is_initialized()
    rank = accelerator.process_index
    objective, encoded, present = build()
    rows = slice(rank * LOCAL_B, (rank + 1) * LOCAL_B)
    local_encoded = {m: x[rows] for m, x in encoded.items()}
    local_present = {m: p[rows] for m, p in present.items()}
    result = loss_and_grads(objective, local_encoded, local_present)
    contrastive.all_gather = detached_all_gather
    result.update({f"detached.{k}": v for k, v in loss_and_grads(objective, local_encoded, local_present).items()})
    torch.save(result, out_dir / f"rank{rank}.pt")
    accelerator.wait_for_everyone()


if __name__ == "__main__":
    run_rank(Path(sys.argv[1]), build, loss_and_grads)
