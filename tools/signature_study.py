"""The signature-results study of docs/study.md: VideoMAE's hallmark results on MovingDigits.

Each arm is a recipe plus gin bindings, trained once per seed with `mmmae train` (one run at a
time, every core), then read back from its run's summary.json: the video linear probe of the
digit class, pretrained and at random initialisation (the same model before step 1), and the
last logged loss. Writes `table.md` (every arm, per seed with its Wilson 95 % interval; then the
training-length table and its log-linear fit), `runs.jsonl` (one line per run) and up to four
figures into the figure folder. Runs that already have a summary.json are not trained again;
`--report_only` only redraws. Prints the command of every run.

    python tools/signature_study.py --output_dir runs/study --figures docs/figures/study
    OMP_NUM_THREADS=1 python tools/signature_study.py --arms "tube 0.9 3000 steps" "tube 0.75 3000 steps" \
        --output_dir runs/study --figures /tmp/study_figures
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
from scipy.stats import linregress  # noqa: E402

from mmmae.eval.interval import wilson_interval as wilson  # noqa: E402  (the evaluations' own interval)


@dataclass(frozen=True)
class Arm:
    """One setting: `group` names the comparison it belongs to, `ratio` its mask ratio (if any),
    `steps` its optimizer steps (warmup a tenth)."""

    name: str
    group: str
    recipe: str
    bindings: tuple[str, ...] = ()
    ratio: float | None = None
    steps: int = 300


VIDEO = "gin/recipes/quickstart_video.gin"
FRAMES = "gin/recipes/study/frames.gin"
MULTIMODAL = "gin/recipes/quickstart.gin"
ARMS = (
    *(Arm(f"tube {r}", "tube", VIDEO, (f"video/TubeMasking.ratio = {r}",), r) for r in (0.5, 0.75, 0.9)),
    *(Arm(f"frame {r}", "frame", FRAMES, (f"video/RandomMasking.ratio = {r}",), r) for r in (0.5, 0.75, 0.9)),
    Arm("video only", "modalities", VIDEO, steps=240),
    Arm("multimodal", "modalities", MULTIMODAL, steps=240),
    # Training length: the tube and frame arms again at 10x the steps (tube 0.9 also at 1000).
    *(Arm(f"tube {r} {n} steps", "tube", VIDEO, (f"video/TubeMasking.ratio = {r}",), r, n)
      for r, n in ((0.9, 1000), (0.9, 3000), (0.75, 3000), (0.5, 3000))),
    *(Arm(f"frame {r} 3000 steps", "frame", FRAMES, (f"video/RandomMasking.ratio = {r}",), r, 3000)
      for r in (0.5, 0.75, 0.9)),
)
SEEDS = (0, 1)
PROBE = {"train": 2048, "test": 1024}  # as data/moving_digits.gin
QUICK_STEPS = 4
QUICK_PROBE = {"train": 64, "test": 64}
TARGET_GAIN = 0.15  # issue 19: pretrained beats random init by at least 15 points
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
    """One record per finished run: arm, seed, steps, probe accuracies, n, last logged loss and
    wall seconds (None if unknown)."""
    records = []
    for arm in arms:
        for seed in seeds:
            run_dir = output_dir / run_name(arm, seed)
            if not (run_dir / "summary.json").is_file():
                continue
            summary = json.loads((run_dir / "summary.json").read_text())
            wall = run_dir / "wall.json"
            records.append({"arm": arm, "seed": seed, "steps": summary["steps"], **video_probe(summary),
                            "loss": summary["loss_end"],
                            "seconds": json.loads(wall.read_text())["seconds"] if wall.is_file() else None})
    return records


def run_log(records: list[dict]) -> str:
    """JSON lines, one per run: setting, seed, steps, wall seconds, probe accuracies with their
    Wilson 95 % intervals, last loss."""
    return "".join(json.dumps({
        "arm": r["arm"].name, "recipe": r["arm"].recipe, "bindings": list(r["arm"].bindings), "seed": r["seed"],
        "steps": r["steps"], "seconds": r["seconds"], "test_samples": r["n"],
        "pretrained": r["pretrained"], "pretrained_ci": wilson(r["pretrained"], r["n"]),
        "random_init": r["random_init"], "random_init_ci": wilson(r["random_init"], r["n"]),
        "loss_end": r["loss"]}) + "\n" for r in records)


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


def lengths(records: list[dict]) -> dict[str, list[dict]]:
    """The runs of every setting (recipe and bindings) trained at two or more lengths, by the
    setting's label ('tube 0.9'), sorted by steps."""
    settings: dict[tuple, list[dict]] = {}
    for r in records:
        settings.setdefault((r["arm"].recipe, r["arm"].bindings), []).append(r)
    return {_label(rows[0]["arm"]): sorted(rows, key=lambda r: (r["steps"], r["seed"]))
            for rows in settings.values() if len({r["steps"] for r in rows}) > 1}


def _label(arm: Arm) -> str:
    return f"{arm.group} {arm.ratio}" if arm.ratio is not None else arm.group


def length_fit(rows: list[dict]) -> dict:
    """Least-squares fit of each run's gain (pretrained - random init) against log10(steps):
    `slope` (gain per tenfold steps) with its standard error, `intercept`, and `target_steps`, where
    the line reaches TARGET_GAIN (inf if it does not rise). `seconds_per_step`: the timed runs'
    wall seconds over their steps, evaluations included (None if no run is timed)."""
    gain = linregress(np.log10([r["steps"] for r in rows]), [r["pretrained"] - r["random_init"] for r in rows])
    rising = gain.slope > 0
    fit = {"slope": float(gain.slope), "slope_stderr": float(gain.stderr), "intercept": float(gain.intercept),
           "target_steps": float(10 ** ((TARGET_GAIN - gain.intercept) / gain.slope)) if rising else float("inf"),
           "seconds_per_step": None}
    timed = [r for r in rows if r["seconds"] is not None]
    if timed:
        fit["seconds_per_step"] = sum(r["seconds"] for r in timed) / sum(r["steps"] for r in timed)
    return fit


def length_table(records: list[dict]) -> str:
    """Markdown: per setting trained at several lengths, one row per length (seeds side by side),
    then the line of its log-linear fit."""
    lines = ["| setting | steps | seeds | pretrained, per seed [95 % CI] | random init, per seed [95 % CI] | "
             "gain, per seed | gain mean | last loss, per seed | minutes per run |",
             "|---|---|---|---|---|---|---|---|---|"]
    fits = []
    for label, rows in lengths(records).items():
        for steps in dict.fromkeys(r["steps"] for r in rows):
            runs = [r for r in rows if r["steps"] == steps]
            gains = [r["pretrained"] - r["random_init"] for r in runs]
            seconds = [r["seconds"] for r in runs if r["seconds"] is not None]
            losses = ", ".join(f"{r['loss']:.3f}" for r in runs)
            lines.append(
                f"| {label} | {steps} | {', '.join(str(r['seed']) for r in runs)} | "
                f"{'<br>'.join(_with_ci(r['pretrained'], r['n']) for r in runs)} | "
                f"{'<br>'.join(_with_ci(r['random_init'], r['n']) for r in runs)} | "
                f"{', '.join(f'{g:+.3f}' for g in gains)} | {np.mean(gains):+.3f} | "
                f"{losses} | "
                f"{f'{np.mean(seconds) / 60:.1f}' if seconds else '–'} |")
        fits.append(f"- {label}: {_fit_sentence(length_fit(rows), len(rows))}")
    return "\n".join([*lines, "", *fits])


def _fit_sentence(fit: dict, runs: int) -> str:
    line = (f"gain = {fit['intercept']:+.3f} + {fit['slope']:.3f} x log10(steps) over {runs} runs "
            f"(slope standard error {fit['slope_stderr']:.3f})")
    if fit["target_steps"] == float("inf"):
        return line + f"; the gain does not rise with steps, so the fit never reaches +{TARGET_GAIN}"
    line += f"; it reaches +{TARGET_GAIN} at {fit['target_steps']:.3g} steps"
    if fit["seconds_per_step"] is None:
        return line
    hours = fit["seconds_per_step"] * fit["target_steps"] / 3600
    return line + (f", {hours:.3g} hours at the measured {fit['seconds_per_step']:.3f} s per step "
                   "(wall time over steps of the timed runs, evaluations included)")


def _seed_points(ax, x: float, rows: list[dict], key: str, color: str, spread: float) -> None:
    """One dot per seed (side by side, `spread` apart) with its Wilson 95 % interval."""
    for i, r in enumerate(rows):
        low, high = wilson(r[key], r["n"])
        ax.errorbar(x + (i - (len(rows) - 1) / 2) * spread, r[key], yerr=[[r[key] - low], [high - r[key]]],
                    fmt="o", color=color, ecolor="black", elinewidth=0.8, capsize=2, markersize=5,
                    markeredgecolor="black", markeredgewidth=0.5, zorder=3)


def ratio_panels(records: list[dict]) -> list[tuple[str, int]]:
    """(masking group, steps) of every mask-ratio comparison: two or more ratios at one length."""
    keys = dict.fromkeys((g, r["steps"]) for g in GROUP_TITLES for r in records if r["arm"].group == g)
    return [k for k in keys if len({r["arm"].ratio for r in records if (r["arm"].group, r["steps"]) == k}) > 1]


def ratio_figure(records: list[dict], path: Path) -> None:
    """Probe accuracy against mask ratio, one panel per masking group (tube, frame) and length:
    per-seed points, their mean, and the random-init accuracy of the same models as a dashed line."""
    panels = ratio_panels(records)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.4), squeeze=False, sharey=True)
    for ax, (group, steps) in zip(axes[0], panels):
        rows = [r for r in records if (r["arm"].group, r["steps"]) == (group, steps)]
        ratios = sorted({r["arm"].ratio for r in rows})
        means = [np.mean([r["pretrained"] for r in rows if r["arm"].ratio == x]) for x in ratios]
        for x in ratios:
            _seed_points(ax, x, [r for r in rows if r["arm"].ratio == x], "pretrained", "tab:blue", 0.015)
        ax.plot(ratios, means, color="tab:blue", label="pretrained: seed mean (dots: seeds, 95 % CI)")
        ax.axhline(np.mean([r["random_init"] for r in rows]), color="gray", linestyle="--",
                   label="random init (mean over seeds)")
        ax.set(title=f"{GROUP_TITLES[group]},\n{steps} steps", xlabel="mask ratio", xticks=ratios)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize=8)
    values = [r[k] for r in records for k in ("pretrained", "random_init")]
    axes[0][0].set(ylabel="linear probe accuracy (digit, test)", ylim=(min(values) - 0.08, max(values) + 0.08))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def length_figure(records: list[dict], path: Path) -> None:
    """Against steps (log axis), per setting trained at several lengths: left, the gain over random
    init per run (marker by seed), its seed mean (line) and the log-linear fit (dashed) up to where
    it reaches TARGET_GAIN (star); right, the last logged training loss per run and its mean."""
    fig, (gain_ax, loss_ax) = plt.subplots(1, 2, figsize=(11.0, 6.4), sharex=True)
    markers = dict(zip(sorted({r["seed"] for r in records}), "osD^v"))
    ticks = set()
    for (label, rows), color in zip(lengths(records).items(), plt.cm.tab10.colors):
        steps = sorted({r["steps"] for r in rows})
        ticks.update(steps)
        for ax, value in ((gain_ax, lambda r: r["pretrained"] - r["random_init"]), (loss_ax, lambda r: r["loss"])):
            for r in rows:
                ax.plot(r["steps"], value(r), markers[r["seed"]], color=color, markeredgecolor="black",
                        markeredgewidth=0.5, alpha=0.85)
            ax.plot(steps, [np.mean([value(r) for r in rows if r["steps"] == n]) for n in steps], color=color,
                    label=f"{label}: seed mean")
        fit = length_fit(rows)
        end = fit["target_steps"] if np.isfinite(fit["target_steps"]) else steps[-1]
        x = np.geomspace(steps[0], max(end, steps[-1]), 50)
        gain_ax.plot(x, fit["intercept"] + fit["slope"] * np.log10(x), "--", color=color,
                     label=f"{label}: fit, {fit['slope']:+.3f} per tenfold steps")
        if np.isfinite(fit["target_steps"]):
            gain_ax.plot(fit["target_steps"], TARGET_GAIN, "*", color=color, markersize=12, markeredgecolor="black",
                         label=f"{label}: fit reaches +{TARGET_GAIN} at {fit['target_steps']:.3g} steps")
    for seed, marker in markers.items():
        gain_ax.plot([], [], marker, color="white", markeredgecolor="black", label=f"seed {seed}")
    gain_ax.axhline(TARGET_GAIN, color="black", linewidth=0.8, linestyle=":", label=f"target: +{TARGET_GAIN}")
    gain_ax.axhline(0.0, color="gray", linewidth=0.8)
    gain_ax.set(title="video probe gain over random init (digit, test)", ylabel="pretrained - random init accuracy",
                ylim=(min(0.0, gain_ax.get_ylim()[0]), max(TARGET_GAIN, gain_ax.get_ylim()[1]) + 0.03))
    loss_ax.set(title="last logged training loss", ylabel="reconstruction loss (normalised pixels)")
    high = gain_ax.get_xlim()[1]  # decades past the runs, where a fit reaches the target, get a tick too
    ticks.update(10 ** k for k in range(4, 8)
                 if 10 ** k <= high and min(abs(np.log10(10 ** k / t)) for t in ticks) > 0.2)
    for ax in (gain_ax, loss_ax):
        ax.set_xscale("log")
        ax.set_xticks(sorted(ticks), [f"{n:.0f}" for n in sorted(ticks)])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set(xlabel="optimizer steps (batch 64, log scale)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=2)  # below: no data hidden
    fig.savefig(path, dpi=120, bbox_inches="tight")  # the legends below the axes included, clear of the labels
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
    ax.set_xticks(range(len(arms)), [a.name.replace(f" {a.steps} steps", f"\n{a.steps} steps") for a in arms])
    ax.set(title=title, ylabel="linear probe accuracy (digit, test)", ylim=(0, 1))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def figures(records: list[dict], folder: Path) -> list[Path]:
    """mask_ratio.png, pretrained_vs_random.png, multimodal_vs_video.png, length.png (those with data)."""
    folder.mkdir(parents=True, exist_ok=True)
    done = list(dict.fromkeys(r["arm"] for r in records))
    written = []
    if ratio_panels(records):
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
    if lengths(records):
        length_figure(records, folder / "length.png")
        written.append(folder / "length.png")
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
    probe = QUICK_PROBE if args.quick else PROBE
    output_dir = Path(args.output_dir)
    if not args.report_only:
        for seed in seeds:  # every arm once before any arm twice
            for arm in arms:
                train(arm, seed, QUICK_STEPS if args.quick else arm.steps, probe, output_dir / run_name(arm, seed))
    records = collect(output_dir, arms, seeds)
    if not records:
        sys.exit(f"no finished run under {output_dir}")
    markdown = table(records) + ("\n\n" + length_table(records) if lengths(records) else "")
    (output_dir / "table.md").write_text(markdown + "\n")
    (output_dir / "runs.jsonl").write_text(run_log(records))
    print(markdown)
    for path in figures(records, Path(args.figures)):
        print(f"figure: {path}")


if __name__ == "__main__":
    main()
