"""Peak memory of one training step of a recipe at points of its masking curriculum, with a fixed batch
(pretrain.batch_size every step) and with its adaptive batch (pretrain.adaptive_batch): what
docs/diffusion_mavil.md reports.

Each step (forward, backward, AdamW step, after one warm-up step that creates the optimizer state) runs
under torch's MemTracker (torch.distributed._tools.mem_tracker), which counts every tensor's storage
by category (parameters, gradients, optimizer state, activations, temporaries, the collated batch):
the peak is the largest total of live tensors during the step, the same on any CPU.

    OMP_NUM_THREADS=1 python tools/generative/mavil_memory.py --gin_file gin/recipes/diffusion_mavil.gin --fit
    OMP_NUM_THREADS=1 python tools/generative/mavil_memory.py --gin_file gin/recipes/diffusion_mavil.gin --points 5
"""

import argparse
import json

import gin
import torch
from torch.distributed._tools.mem_tracker import MemTracker
from torch.utils.data import default_collate

from mmmae.config import parse_config
from mmmae.data.adaptive_batch import AdaptiveBatch, model_token_counts
from mmmae.eval.evaluate import initial_model
from mmmae.masking.rng import MaskRNG
from mmmae.optim import build_optimizer
from mmmae.train import mask_seed

MIB = 2**20


def step_peak(model: torch.nn.Module, optimizer: torch.optim.Optimizer, samples: list[dict], collate,
              rng: MaskRNG) -> dict[str, float]:
    """One training step on `samples` (collated inside, so the batch counts) under MemTracker: the
    peak total (MiB) and its activation + temporary share."""
    tracker = MemTracker()
    tracker.track_external(model, optimizer)
    with tracker:
        out = model(collate(samples), rng)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    peak = {str(kind).split(".")[-1]: size for kind, size in tracker.get_tracker_snapshot("peak")[torch.device("cpu")]
            .items()}
    return {"peak_mib": peak["Total"] / MIB, "activations_mib": (peak["ACT"] + peak["TEMP"]) / MIB}


class Setup:
    """The parsed recipe's model (after a warm-up step, so that AdamW's state exists), its optimizer,
    samples, token counts per step and adaptive batch sizes."""

    def __init__(self):
        self.steps, self.batch_size = gin.query_parameter("pretrain.steps"), gin.query_parameter("pretrain.batch_size")
        self.seed = 0  # the model's initialisation and the masks: memory does not depend on them
        self.model = initial_model(gin.query_parameter("pretrain.model").scoped_configurable_fn, self.seed)
        data = gin.query_parameter("pretrain.dataset").scoped_configurable_fn()
        self.collate = getattr(data, "collate", default_collate)
        self.counts = model_token_counts(self.model, data, self.steps, grad_accum=1, seed=self.seed)
        self.sizes = AdaptiveBatch().batch_sizes(self.counts, self.batch_size)
        self.optimizer, _ = build_optimizer(self.model, 1e-4, 0.05, (0.9, 0.95), self.steps, 0, 0.0)
        self.samples = [data[i] for i in range(max(max(self.sizes), self.batch_size))]
        self.model(self.collate(self.samples[:2]), MaskRNG.seeded(0)).loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def peak(self, step: int, size: int) -> dict[str, float]:
        """step_peak at optimizer step `step` (its masking ratio) on `size` samples."""
        torch.manual_seed(step)
        return step_peak(self.model, self.optimizer, self.samples[:size], self.collate,
                         MaskRNG.seeded(mask_seed(self.seed, step), step=step))

    def visible(self, step: int) -> int:
        return sum(k for k, _, _ in self.counts[step].values())


def measure(setup: Setup, points: int) -> list[dict]:
    """Rows for `points` steps spread over the curriculum (pretrain.steps), fixed and adaptive batch."""
    rows = []
    for step in [round(i * (setup.steps - 1) / (points - 1)) for i in range(points)]:
        row = {"step": step, "tokens": setup.counts[step], "fixed_batch": setup.batch_size,
               "adaptive_batch": setup.sizes[step]}
        for name, size in (("fixed", setup.batch_size), ("adaptive", setup.sizes[step])):
            row.update({f"{name}_{key}": value for key, value in setup.peak(step, size).items()})
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def fit(setup: Setup) -> dict[str, float]:
    """AdaptiveBatch's costs in KiB from the peaks at the curriculum's first and last step, each at
    pretrain.batch_size B and B / 2: a sample's share a(s) = (peak(B) - peak(B / 2)) / (B - B / 2) =
    v K(s) + u. Every token being seen or predicted (K + Q fixed), a predicted token's cost cannot be
    told from the sample's: decoder_cost = 0, encoder_cost = v, sample_cost = u."""
    half = setup.batch_size // 2
    share = {}
    for step in (0, setup.steps - 1):
        full, part = setup.peak(step, setup.batch_size)["peak_mib"], setup.peak(step, half)["peak_mib"]
        share[step] = (full - part) * MIB / 1024 / (setup.batch_size - half)
    last = setup.steps - 1
    slope = (share[0] - share[last]) / (setup.visible(0) - setup.visible(last))
    return {"encoder_cost": slope, "decoder_cost": 0.0, "sample_cost": share[0] - slope * setup.visible(0),
            "share_kib": share}


def table(rows: list[dict]) -> str:
    """A markdown table of the rows, each peak also as a share of step 0's."""
    lines = ["| step | video K/Q | audio K/Q | fixed batch | peak MiB (vs step 0) | adaptive batch | "
             "peak MiB (vs step 0) |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        tokens = " | ".join(f"{k}/{q}" for k, q, _ in row["tokens"].values())
        fixed, adaptive = (f"{row[f'{m}_peak_mib']:.1f} ({row[f'{m}_peak_mib'] / rows[0][f'{m}_peak_mib'] - 1:+.1%})"
                           for m in ("fixed", "adaptive"))
        lines.append(f"| {row['step']} | {tokens} | {row['fixed_batch']} | {fixed} | {row['adaptive_batch']} | "
                     f"{adaptive} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gin_file", action="append", required=True)
    parser.add_argument("--gin_param", action="append", default=[])
    parser.add_argument("--points", type=int, default=5)
    parser.add_argument("--fit", action="store_true", help="measure AdaptiveBatch's costs instead of the table")
    parser.add_argument("--output", help="write the rows (or the fitted costs) as JSON here")
    args = parser.parse_args()
    parse_config(args.gin_file, args.gin_param)
    setup = Setup()
    result = fit(setup) if args.fit else measure(setup, args.points)
    print(json.dumps(result, indent=2) if args.fit else table(result))
    if args.output:
        with open(args.output, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
