"""The masking ablation of docs/masking.md: every gin/ablations/masking/<row>.gin trained the same way.

Each row pretrains the tiny video quickstart with one masker (same model, data, steps and
seed), then reads its linear-probe accuracy (pretrained and random init) and its last logged
reconstruction loss, and draws its masks with `mmmae viz-mask`. Rows run as separate
processes, `--jobs` at a time with `--threads` torch threads each. Prints a Markdown table.

    python tools/masking_table.py --output_dir runs/masking --figures docs/figures/masking
"""

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mmmae.config import GIN_DIR

ROWS = sorted(p.stem for p in (GIN_DIR / "ablations" / "masking").glob("*.gin"))
BASELINE = "tube"


def run_row(name: str, args: argparse.Namespace) -> dict:
    """Train and evaluate one row; its summary numbers and wall time (rows share the CPU)."""
    run_dir = Path(args.output_dir) / name
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    params = [f"pretrain.steps = {args.steps}", f"pretrain.warmup_steps = {args.steps // 10}",
              f"video/RatioCurriculum.steps = {args.steps}"]
    gin = ["--gin_file", f"ablations/masking/{name}.gin"] + [flag for p in params for flag in ("--gin_param", p)]
    tic = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mmmae", "train", *gin, "--output_dir", str(run_dir)], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - tic
    subprocess.run([sys.executable, "-m", "mmmae", "viz-mask", *gin, "--output_dir", str(Path(args.figures) / name),
                    "--samples", "2"], env=env, check=True, stdout=subprocess.DEVNULL)
    summary = json.loads((run_dir / "summary.json").read_text())
    probe = next(e for e in summary["evaluations"] if e["kind"] == "linear_probe")
    last = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    reconstruction = next(value for key, value in last.items() if key.endswith("_reconstruction"))
    return {"name": name, "probe": probe["pretrained"]["test_accuracy"],
            "random_init": probe["random_init"]["test_accuracy"], "reconstruction": reconstruction,
            "minutes": seconds / 60}


def table(results: list[dict], figures: str) -> str:
    """Markdown rows; the probe's difference to the baseline row measured in the same run."""
    base = next((r["probe"] for r in results if r["name"] == BASELINE), None)
    lines = ["| masker (gin/ablations/masking/…) | probe acc. | vs tube | random init | recon. loss | masks |",
             "|---|---|---|---|---|---|"]
    for r in results:
        delta = "" if base is None else f"{r['probe'] - base:+.3f}"
        lines.append(f"| {r['name']} | {r['probe']:.3f} | {delta} | {r['random_init']:.3f} | "
                     f"{r['reconstruction']:.4f} | [{r['name']}/]({figures}/{r['name']}/) |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", default="runs/masking")
    parser.add_argument("--figures", default="docs/figures/masking")
    parser.add_argument("--steps", type=int, default=900)
    parser.add_argument("--rows", nargs="*", default=ROWS, choices=ROWS)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    with ThreadPoolExecutor(args.jobs) as pool:
        results = {r["name"]: r for r in pool.map(lambda name: run_row(name, args), args.rows)}
    saved = Path(args.output_dir) / "table.json"  # rows of earlier invocations are kept
    earlier = {r["name"]: r for r in json.loads(saved.read_text())} if saved.is_file() else {}
    merged = [{**earlier, **results}[name] for name in sorted({**earlier, **results})]
    saved.write_text(json.dumps(merged, indent=2))
    print(table(merged, args.figures))


if __name__ == "__main__":
    main()
