"""Helper for tests/objectives/test_nt_xent.py, run by `accelerate launch` with 2 CPU processes.

Each process takes its half of a fixed global batch as leaf tensors, computes NT-Xent (its BatchNorm
statistics and its negatives gathered from both processes) and backpropagates; it saves its loss, the
gradients w.r.t. its half of the inputs and w.r.t. the projector's parameters to <out_dir>/rank<r>.pt.
It does this twice: as written, and with the gather swapped for one that carries no gradient to the
other process (`detached_all_gather`), which the test must be able to tell apart.
"""

import sys
from pathlib import Path
from types import SimpleNamespace

import torch

from mmmae.objectives.nt_xent import NTXent
from tests.objectives.contrastive_two_process import run_rank

WORLD, LOCAL_B, TOKENS, WIDTH, HIDDEN = 2, 4, 3, 8, 16
ABSENT = {"view1": [6], "view2": [1]}  # global sample indices; one per process keeps the usable counts equal


def build() -> tuple[NTXent, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The objective (seeded projector with BatchNorm), the global encodings and presence."""
    torch.manual_seed(0)
    objective = NTXent(modalities=("view1", "view2"), in_dim=WIDTH, proj_dim=6, hidden=HIDDEN, depth=2,
                       temperature=0.2)
    encoded = {m: torch.randn(WORLD * LOCAL_B, TOKENS, WIDTH) for m in objective.modalities}
    present = {m: torch.ones(WORLD * LOCAL_B, dtype=torch.bool) for m in objective.modalities}
    for m, indices in ABSENT.items():
        present[m][indices] = False
    return objective, encoded, present


def loss_and_grads(objective: NTXent, encoded: dict, present: dict) -> dict[str, torch.Tensor]:
    """Forward and backward on the given rows; the loss, input gradients, parameter gradients and
    the BatchNorm running statistics after the step."""
    objective.zero_grad()
    leaves = {m: x.clone().requires_grad_() for m, x in encoded.items()}
    outputs = {m: SimpleNamespace(encoded=leaves[m], present=present[m], mask=None) for m in leaves}
    loss, _ = objective(outputs, {"index": torch.arange(len(present["view1"]))})
    loss.backward()
    result = {"loss": loss.detach()}
    result.update({f"input.{m}": x.grad for m, x in leaves.items()})
    result.update({f"param.{n}": p.grad.clone() for n, p in objective.named_parameters()})
    result.update({f"buffer.{n}": b.clone() for n, b in objective.named_buffers() if n.startswith("projector")})
    return result


if __name__ == "__main__":
    run_rank(Path(sys.argv[1]), build, loss_and_grads)
