"""DiffMAE against the regression decoder it replaces (docs/diffmae.md): the same encoder, data, steps and
seed, trained by gin/recipes/diffmae.gin with its DiffusionDecoder or with the MaskTokenDecoder.

For each arm: the linear probe of pretraining's end (trained and random init); inpainting PSNR on the
hidden pixels of held-out test clips under the recipe's own masks (random tokens at 90 %), through
`mmmae.inpaint.inpaint_clips` (the regression answer; for the diffusion decoder the best of n samples,
the mean PSNR of the n samples and the PSNR of their average, per sampler); the samples' diversity
(the per-pixel standard deviation across the n samples of one clip, over hidden pixels); FLOPs of one
training step (forward and backward, torch.utils.flop_counter), of the decoder's forward in it, and of
one sampled answer; wall and CPU time per training step (forward, backward, AdamW). Writes results.json
and an inpainting grid; prints two Markdown tables.

    python tools/generative/diffmae_table.py --output_dir runs/diffmae_table --figure docs/figures/diffmae_inpainting
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from mmmae.data.moving_digits.dataset import MovingDigits
from mmmae.generate import fill
from mmmae.inpaint import Inpainting, inpaint_clips, write_outputs
from mmmae.masking.rng import MaskRNG
from mmmae.model import MaskedAutoencoder
from mmmae.types import gather_tokens
from mmmae.zoo.pretrained import from_pretrained

ARMS = {"regression": ["video/Modality.decoder = @video/MaskTokenDecoder"], "diffusion": []}
SAMPLERS = {"ddim 50": dict(steps=50, sampler="ddim", eta=0.0), "ddpm 50": dict(steps=50, sampler="ddpm"),
            "ddim 1": dict(steps=1, sampler="ddim", eta=0.0)}
FIGURE_CLIPS, FIGURE_SAMPLES = 2, 3
LEVELS = (0, 200, 400, 600, 800, 950, 999)  # noise levels t of x0_error_by_level


def train(arm: str, args: argparse.Namespace) -> dict:
    """Pretrain one arm (a separate process, `--threads` torch threads) unless its summary exists."""
    run_dir = Path(args.output_dir) / arm
    if not (run_dir / "summary.json").exists():
        params = [f"pretrain.steps = {args.steps}", f"pretrain.warmup_steps = {args.steps // 10}",
                  f"pretrain.batch_size = {args.batch_size}", *ARMS[arm]]
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
        tic = time.perf_counter()
        subprocess.run([sys.executable, "-m", "mmmae", "train", "--gin_file", "recipes/diffmae.gin",
                        *[flag for p in params for flag in ("--gin_param", p)], "--output_dir", str(run_dir)],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        (run_dir / "train_seconds.txt").write_text(f"{time.perf_counter() - tic:.1f}\n")
    return json.loads((run_dir / "summary.json").read_text())


def hidden_pixel_mask(model: MaskedAutoencoder, clips: torch.Tensor, seed: int) -> torch.Tensor:
    """(B, T, H, W) True on the tokens the recipe's masker hides (MaskRNG seeded with `seed`)."""
    video = model.modalities["video"]
    tokens = video.tokenizer(clips)
    plan = video.masker(tokens, {"video": clips}, MaskRNG.seeded(seed))
    hidden = torch.zeros(tokens.embed.shape[:2], dtype=torch.bool).scatter_(1, plan.predict, True)
    t, h, w = tokens.grid
    p0, p1, p2 = video.tokenizer.kernel
    cube = hidden.reshape(-1, t, 1, h, 1, w, 1).expand(-1, t, p0, h, p1, w, p2)
    return cube.reshape(-1, t * p0, h * p1, w * p2)


def psnr(filled: torch.Tensor, clips: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """filled (..., B, C, T, H, W), clips (B, C, T, H, W) in [0, 1] -> PSNR (..., B) in dB over the masked pixels."""
    weight = mask[:, None].expand_as(clips).float()
    mse = ((filled - clips) ** 2 * weight).sum(dim=(-4, -3, -2, -1)) / weight.sum(dim=(-4, -3, -2, -1))
    return 10 * torch.log10(1 / mse)


def mean_ci(values: torch.Tensor) -> list[float]:
    """Mean and a 95 % normal interval over clips."""
    mean, half = values.mean().item(), 1.96 * values.std().item() / len(values) ** 0.5
    return [round(mean, 2), round(mean - half, 2), round(mean + half, 2)]


def inpainting(model: MaskedAutoencoder, clips: torch.Tensor, mask: torch.Tensor, args: argparse.Namespace) -> dict:
    """PSNR and diversity rows of one model."""
    if not hasattr(model.modalities["video"].decoder, "sample"):
        return {"forward": {"psnr": mean_ci(psnr(inpaint_clips(model, clips, mask)[0], clips, mask))}}
    rows = {}
    for name, settings in SAMPLERS.items():
        samples = inpaint_clips(model, clips, mask, num_samples=args.samples,
                                generator=torch.Generator().manual_seed(args.seed), **settings)
        per_sample = psnr(samples, clips, mask)  # (S, B)
        weight = mask[:, None].expand_as(clips).float()
        spread = (samples.std(dim=0) * weight).sum(dim=(1, 2, 3, 4)) / weight.sum(dim=(1, 2, 3, 4))
        rows[name] = {"best_of_n": mean_ci(per_sample.amax(dim=0)), "mean_of_n": mean_ci(per_sample.mean(dim=0)),
                      "average_sample": mean_ci(psnr(samples.mean(dim=0), clips, mask)),
                      "diversity_std": round(spread.mean().item(), 4)}
    return rows


def x0_error_by_level(model: MaskedAutoencoder, clips: torch.Tensor, args: argparse.Namespace) -> dict:
    """The diffusion decoder's x0 MSE (target units) on the clips' hidden tokens at a few noise levels t,
    beside the hidden targets' variance (the MSE of their mean): where its denoising holds and fails."""
    decoder = model.modalities["video"].decoder
    batch = {"video": clips}
    with torch.no_grad():
        tokens, plans = model.tokenize_and_mask(batch, MaskRNG.seeded(args.seed))
        out = model.encode_visible(tokens, plans, batch)["video"]
        x0 = gather_tokens(out.tokens.target, out.plan.predict)
        context = decoder.context(out.encoded, out.tokens.grid, out.plan, None)
        generator, errors = torch.Generator().manual_seed(args.seed), {"target_variance": round(x0.var().item(), 3)}
        for step in LEVELS:
            t = torch.full(x0.shape[:1], step)
            x_t = decoder.schedule.noised(x0, t, torch.randn(x0.shape, generator=generator))
            x0_hat = decoder.denoise(x_t, t, context, out.tokens.grid, out.plan)
            errors[str(step)] = round((x0_hat - x0).square().mean().item(), 3)
    return errors


def write_figure(model: MaskedAutoencoder, clips: torch.Tensor, mask: torch.Tensor, args: argparse.Namespace) -> None:
    """The inpainting grid (PNG and mp4) of the first FIGURE_CLIPS clips, FIGURE_SAMPLES samples each."""
    shown = inpaint_clips(model, clips[:FIGURE_CLIPS], mask[:FIGURE_CLIPS], num_samples=FIGURE_SAMPLES,
                          generator=torch.Generator().manual_seed(args.seed), **SAMPLERS["ddim 50"])
    write_outputs(Inpainting(clips[:FIGURE_CLIPS], mask[:FIGURE_CLIPS], shown, True),
                  [f"clip {i}" for i in range(FIGURE_CLIPS)], Path(args.figure),
                  "DiffMAE (diffmae.gin), 90 % random tokens hidden, DDIM 50 steps")


def costs(model: MaskedAutoencoder, batch: dict, args: argparse.Namespace) -> dict:
    """GFLOPs of a training step and of one answer (a batch's, DDIM 50 steps for the diffusion decoder); wall
    and CPU seconds per training step (medians of `timed` steps, after 2; the CPU time is the process's, the
    figure that holds on a loaded machine)."""
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        out = model(batch, MaskRNG.seeded(args.seed))
        optimizer.zero_grad()
        out.loss.backward()

    with FlopCounterMode(display=False) as counter:
        step()
    train_flops = counter.get_total_flops()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(batch, MaskRNG.seeded(args.seed))
    decoder_flops = sum(counter.get_flop_counts().get("MaskedAutoencoder.modalities.video.decoder", {}).values())
    wall, cpu = [], []
    for _ in range(args.timed + 2):
        tic, cpu_tic = time.perf_counter(), time.process_time()
        step()
        optimizer.step()
        wall.append(time.perf_counter() - tic)
        cpu.append(time.process_time() - cpu_tic)
    model.eval()
    video = model.modalities["video"]
    tokens = video.tokenizer(batch["video"])
    plan = video.masker(tokens, batch, MaskRNG.seeded(args.seed))
    settings = SAMPLERS["ddim 50"] if hasattr(video.decoder, "sample") else {}
    with FlopCounterMode(display=False) as counter:
        fill(model, batch, "video", plan, **settings)
    answer_flops = counter.get_total_flops()
    return {"train_step_gflops": round(train_flops / 1e9, 2), "decoder_forward_gflops": round(decoder_flops / 1e9, 2),
            "answer_gflops": round(answer_flops / 1e9, 2),
            "train_step_seconds": median(wall[2:]), "train_step_cpu_seconds": median(cpu[2:])}


def median(values: list[float]) -> float:
    """The median, rounded to milliseconds."""
    return round(sorted(values)[len(values) // 2], 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", default="runs/diffmae_table")
    parser.add_argument("--figure", default=None, help="path (no suffix) of the inpainting grid PNG and mp4")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--clips", type=int, default=256, help="held-out test clips to inpaint")
    parser.add_argument("--samples", type=int, default=8, help="diffusion samples per clip (n)")
    parser.add_argument("--timed", type=int, default=10, help="training steps timed per arm")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {}
    for arm in ARMS:
        summary = train(arm, args)
        probe = next(e for e in summary["evaluations"] if e["kind"] == "linear_probe")
        model = from_pretrained(Path(args.output_dir) / arm)  # parses the run's config.gin: its clip settings
        test = MovingDigits(split="test", num_samples=args.clips, modalities=["video"])
        clips = torch.stack([test[i]["video"] for i in range(args.clips)])
        mask = hidden_pixel_mask(model, clips, args.seed)
        train_clips = MovingDigits(split="train", num_samples=64, modalities=["video"])
        batch = {"video": torch.stack([train_clips[i]["video"] for i in range(64)])}
        trained = probe["pretrained"]
        results[arm] = {"probe": trained["test_accuracy"], "probe_ci": trained["test_accuracy_ci"],
                        "probe_random_init": probe["random_init"]["test_accuracy"],
                        "loss_end": summary["loss_end"], "inpainting": inpainting(model, clips, mask, args),
                        **costs(model, batch, args)}
        if arm == "diffusion":
            results[arm]["x0_mse_by_t"] = x0_error_by_level(model, clips, args)
        if args.figure and arm == "diffusion":
            write_figure(model, clips, mask, args)
        print(arm, json.dumps(results[arm]), flush=True)
    (Path(args.output_dir) / "results.json").write_text(json.dumps(results, indent=2))
    print(table(results))


def table(results: dict) -> str:
    """The two Markdown tables of docs/diffmae.md: inpainting, then the encoders and costs."""
    lines = ["| decoder | sampler | PSNR: the answer, or best of n | mean over n | average of n "
             "| diversity (pixel std) |",
             "|---|---|---|---|---|---|"]
    for arm, r in results.items():
        for sampler, row in r["inpainting"].items():
            cells = [row[k] if k in row else row.get("psnr") for k in ("best_of_n", "mean_of_n", "average_sample")]
            text = [f"{v[0]} ({v[1]}-{v[2]})" for v in cells]
            if "psnr" in row:
                text = [text[0], "", ""]
            lines.append(f"| {arm} | {sampler} | {' | '.join(text)} | {row.get('diversity_std', 0.0)} |")
    lines += ["", "| decoder | linear probe (95 % CI) | random init | last loss | train GFLOPs / step "
              "| decoder forward GFLOPs | CPU s / step | wall s / step | GFLOPs / answer |",
              "|---|---|---|---|---|---|---|---|---|"]
    for arm, r in results.items():
        low, high = r["probe_ci"]
        lines.append(f"| {arm} | {r['probe']:.3f} ({low:.3f}-{high:.3f}) | {r['probe_random_init']:.3f} | "
                     f"{r['loss_end']:.3f} | {r['train_step_gflops']} | {r['decoder_forward_gflops']} | "
                     f"{r['train_step_cpu_seconds']} | "
                     f"{r['train_step_seconds']} | "
                     f"{r['answer_gflops']} |")
    if "x0_mse_by_t" in results.get("diffusion", {}):
        errors = results["diffusion"]["x0_mse_by_t"]
        lines += ["", "| t | " + " | ".join(str(t) for t in LEVELS) + " |", "|---" * (len(LEVELS) + 1) + "|",
                  "| x0 MSE | " + " | ".join(str(errors[str(t)]) for t in LEVELS)
                  + " |", f"(the hidden targets' variance: {errors['target_variance']})"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
