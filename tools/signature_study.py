"""The signature-results study of docs/study.md: VideoMAE's hallmark results on MovingDigits.

Each arm is a recipe plus gin bindings, trained once per seed with `mmmae train` (one run at a
time, every core), then read back from its run's summary.json: the video linear probe of the
digit class, pretrained and at random initialisation (the same model before step 1). Writes
`table.md` (every arm, per seed with its Wilson 95 % interval) and three figures into the
figure folder. Runs that already have a summary.json are not trained again; `--report_only`
only redraws. Prints the command of every run.

    python tools/signature_study.py --output_dir runs/study --figures docs/figures/study
    python tools/signature_study.py --quick --output_dir /tmp/study_quick --figures /tmp/study_quick/figures
"""

import argparse
import json
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mmmae.eval.interval import wilson_interval as wilson  # noqa: E402  (the evaluations' own interval)


@dataclass(frozen=True)
class Arm:
    """One setting: `group` names the comparison it belongs to, `ratio` its mask ratio (if any)."""

    name: str
    group: str
    recipe: str
    bindings: tuple[str, ...] = ()
    ratio: float | None = None


VIDEO = "gin/recipes/quickstart_video.gin"
FRAMES = "gin/recipes/study/frames.gin"
MULTIMODAL = "gin/recipes/quickstart.gin"
ARMS = (
    *(Arm(f"tube {r}", "tube", VIDEO, (f"video/TubeMasking.ratio = {r}",), r) for r in (0.5, 0.75, 0.9)),
    *(Arm(f"frame {r}", "frame", FRAMES, (f"video/RandomMasking.ratio = {r}",), r) for r in (0.5, 0.75, 0.9)),
    Arm("video only", "modalities", VIDEO),
    Arm("multimodal", "modalities", MULTIMODAL),
)
SEEDS = (0, 1)
# Per group: optimizer steps (warmup a tenth). Probe sizes as data/moving_digits.gin.
STEPS = {"tube": 300, "frame": 300, "modalities": 240}
PROBE = {"train": 2048, "test": 1024}
QUICK_STEPS = {"tube": 4, "frame": 4, "modalities": 4}
QUICK_PROBE = {"train": 64, "test": 64}
GROUP_TITLES = {"tube": "video tubes (TubeletTokenizer, tube masking)",
                "frame": "frames (FrameTokenizer, random masking)"}


def run_name(arm: Arm, seed: int) -> str:
    """The run's folder name: the arm's name without spaces, and the seed."""
    return f"{arm.name.replace(' ', '_')}_seed{seed}"


def command(arm: Arm, seed: int, steps: int, probe: dict, run_dir: Path) -> list[str]:
    """The `mmmae train` command line of one arm and seed."""
    bindings = [*arm.bindings, f"pretrain.seed = {seed}", f"pretrain.steps = {steps}",
                f"pretrain.warmup_steps = {max(1, steps // 10)}",
                f"probe_train/MovingDigits.num_samples = {probe['train']}",
                f"probe_test/MovingDigits.num_samples = {probe['test']}"]
    return ["mmmae", "train", "--gin_file", arm.recipe, *(f for b in bindings for f in ("--gin_param", b)),
            "--output_dir", str(run_dir)]


def train(arm: Arm, seed: int, steps: int, probe: dict, run_dir: Path) -> None:
    """Run one arm and seed (unless its summary exists); its wall time goes to run_dir/wall.json."""
    line = command(arm, seed, steps, probe, run_dir)
    print(shlex.join(line), flush=True)
    if (run_dir / "summary.json").is_file():
        return
    tic = time.perf_counter()
    subprocess.run(line, check=True, stdout=subprocess.DEVNULL)
    (run_dir / "wall.json").write_text(json.dumps({"seconds": time.perf_counter() - tic}))


def video_probe(summary: dict) -> dict:
    """Pretrained and random-init test accuracy of the summary's video digit-class linear probe."""
    probe = next(e for e in summary["evaluations"] if e["kind"] == "linear_probe"
                 and e["pretrained"]["modality"] == "video" and e["pretrained"]["label"] == "label")
    return {"pretrained": probe["pretrained"]["test_accuracy"], "random_init": probe["random_init"]["test_accuracy"],
            "n": probe["pretrained"]["test_samples"]}


def collect(output_dir: Path, arms: tuple[Arm, ...], seeds: tuple[int, ...]) -> list[dict]:
    """One record per finished run: arm, seed, steps, probe accuracies, n, wall seconds (None if unknown)."""
    records = []
    for arm in arms:
        for seed in seeds:
            run_dir = output_dir / run_name(arm, seed)
            if not (run_dir / "summary.json").is_file():
                continue
            summary = json.loads((run_dir / "summary.json").read_text())
            wall = run_dir / "wall.json"
            records.append({"arm": arm, "seed": seed, "steps": summary["steps"], **video_probe(summary),
                            "seconds": json.loads(wall.read_text())["seconds"] if wall.is_file() else None})
    return records


def _with_ci(accuracy: float, n: int) -> str:
    low, high = wilson(accuracy, n)
    return f"{accuracy:.3f} [{low:.3f}, {high:.3f}]"


def table(records: list[dict]) -> str:
    """Markdown: one row per arm; per-seed accuracies with Wilson 95 % intervals, means, the gain."""
    lines = ["| arm | recipe, bindings | steps | seeds | pretrained, per seed [95 % CI] | pretrained mean | "
             "random init, per seed [95 % CI] | random init mean | gain | minutes per run |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for arm in dict.fromkeys(r["arm"] for r in records):
        rows = [r for r in records if r["arm"] == arm]
        pretrained, random_init = np.mean([r["pretrained"] for r in rows]), np.mean([r["random_init"] for r in rows])
        seconds = [r["seconds"] for r in rows if r["seconds"] is not None]
        minutes = f"{np.mean(seconds) / 60:.1f}" if seconds else "–"
        recipe = "; ".join([arm.recipe.removeprefix("gin/recipes/"), *arm.bindings])
        lines.append(
            f"| {arm.name} | `{recipe}` | {rows[0]['steps']} | {', '.join(str(r['seed']) for r in rows)} | "
            f"{'<br>'.join(_with_ci(r['pretrained'], r['n']) for r in rows)} | {pretrained:.3f} | "
            f"{'<br>'.join(_with_ci(r['random_init'], r['n']) for r in rows)} | {random_init:.3f} | "
            f"{pretrained - random_init:+.3f} | {minutes} |")
    return "\n".join(lines)


def _seed_points(ax, x: float, rows: list[dict], key: str, color: str, spread: float) -> None:
    """One dot per seed (side by side, `spread` apart) with its Wilson 95 % interval."""
    for i, r in enumerate(rows):
        low, high = wilson(r[key], r["n"])
        ax.errorbar(x + (i - (len(rows) - 1) / 2) * spread, r[key], yerr=[[r[key] - low], [high - r[key]]],
                    fmt="o", color=color, ecolor="black", elinewidth=0.8, capsize=2, markersize=5,
                    markeredgecolor="black", markeredgewidth=0.5, zorder=3)


def ratio_figure(records: list[dict], path: Path) -> None:
    """Probe accuracy against mask ratio, one panel per masking group (tube, frame): per-seed
    points, their mean, and the random-init accuracy of the same model as a dashed line."""
    groups = [g for g in GROUP_TITLES if any(r["arm"].group == g for r in records)]
    fig, axes = plt.subplots(1, len(groups), figsize=(5.2 * len(groups), 4.4), squeeze=False, sharey=True)
    for ax, group in zip(axes[0], groups):
        rows = [r for r in records if r["arm"].group == group]
        ratios = sorted({r["arm"].ratio for r in rows})
        means = [np.mean([r["pretrained"] for r in rows if r["arm"].ratio == x]) for x in ratios]
        for x in ratios:
            _seed_points(ax, x, [r for r in rows if r["arm"].ratio == x], "pretrained", "tab:blue", 0.015)
        ax.plot(ratios, means, color="tab:blue", label="pretrained: seed mean (dots: seeds, 95 % CI)")
        ax.axhline(np.mean([r["random_init"] for r in rows]), color="gray", linestyle="--",
                   label="random init (mean over seeds)")
        ax.set(title=GROUP_TITLES[group], xlabel="mask ratio", xticks=ratios)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize=8)
    values = [r[k] for r in records for k in ("pretrained", "random_init")]
    axes[0][0].set(ylabel="linear probe accuracy (digit, test)", ylim=(min(values) - 0.08, max(values) + 0.08))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def bars_figure(records: list[dict], arms: list[Arm], title: str, path: Path) -> None:
    """Per arm, random-init and pretrained probe accuracy: bars at the seed mean, dots per seed."""
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(arms) + 1.5), 4.2))
    for i, arm in enumerate(arms):
        rows = [r for r in records if r["arm"] == arm]
        for offset, key, color in ((-0.2, "random_init", "lightgray"), (0.2, "pretrained", "tab:blue")):
            label = f"{key.replace('_', ' ')}: seed mean (dots: seeds, 95 % CI)" if i == 0 else None
            ax.bar(i + offset, np.mean([r[key] for r in rows]), width=0.38, color=color, edgecolor="black",
                   linewidth=0.5, label=label)
            _seed_points(ax, i + offset, rows, key, "white", 0.12)
    ax.set_xticks(range(len(arms)), [a.name for a in arms])
    ax.set(title=title, ylabel="linear probe accuracy (digit, test)", ylim=(0, 1))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def figures(records: list[dict], folder: Path) -> list[Path]:
    """mask_ratio.png, pretrained_vs_random.png, multimodal_vs_video.png (those with data)."""
    folder.mkdir(parents=True, exist_ok=True)
    done = list(dict.fromkeys(r["arm"] for r in records))
    written = []
    if any(a.group in GROUP_TITLES for a in done):
        ratio_figure(records, folder / "mask_ratio.png")
        written.append(folder / "mask_ratio.png")
    masked = [a for a in done if a.group in GROUP_TITLES]
    if masked:
        bars_figure(records, masked, "pretrained vs random init, per masking arm", folder / "pretrained_vs_random.png")
        written.append(folder / "pretrained_vs_random.png")
    modal = [a for a in done if a.group == "modalities"]
    if modal:
        bars_figure(records, modal, "video probe: video-only vs multimodal pretraining",
                    folder / "multimodal_vs_video.png")
        written.append(folder / "multimodal_vs_video.png")
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", default="runs/study")
    parser.add_argument("--figures", default="docs/figures/study")
    parser.add_argument("--arms", nargs="*", default=[a.name for a in ARMS], choices=[a.name for a in ARMS])
    parser.add_argument("--seeds", nargs="*", type=int, default=list(SEEDS))
    parser.add_argument("--quick", action="store_true", help="4 steps, 64-clip probes, seed 0: a smoke test")
    parser.add_argument("--report_only", action="store_true", help="train nothing; table and figures of what exists")
    args = parser.parse_args()
    arms = tuple(a for a in ARMS if a.name in args.arms)
    seeds = (0,) if args.quick else tuple(args.seeds)
    steps, probe = (QUICK_STEPS, QUICK_PROBE) if args.quick else (STEPS, PROBE)
    output_dir = Path(args.output_dir)
    if not args.report_only:
        for seed in seeds:  # every arm once before any arm twice
            for arm in arms:
                train(arm, seed, steps[arm.group], probe, output_dir / run_name(arm, seed))
    records = collect(output_dir, arms, seeds)
    if not records:
        sys.exit(f"no finished run under {output_dir}")
    markdown = table(records)
    (output_dir / "table.md").write_text(markdown + "\n")
    print(markdown)
    for path in figures(records, Path(args.figures)):
        print(f"figure: {path}")


if __name__ == "__main__":
    main()
