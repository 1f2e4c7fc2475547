"""docs/siammcvae.md's table: the future frame of MovingDigits test pairs predicted by a SiamMAE run
(regression) and a SiamMCVAE run (samples from its prior), PSNR on the hidden patches, sample
diversity, and each run's linear probe (from its summary.json).

    python tools/generative/siammcvae_table.py --regression runs/siammae --variational runs/siammcvae \
        --clips 512 --samples 8 --figure docs/figures/siammcvae/samples.png

Both models see the same pairs (FramePairs over `--clips` test-split clips at the runs' clip size)
and the same plan (the runs' own view2 masker, seeded by --seed). Predicted targets become pixels
through mmmae.generate.target_pixels, either with each hidden patch's statistics borrowed from its
nearest visible patches (what an inpainting can know) or with its own (MAE's figures; the shape of
the content only). PSNR is 10 log10(1 / MSE) over the hidden pixels of one clip, in [0, 1] after
clamping, averaged over clips with a 95 % normal interval of the mean.
"""

import argparse
import json
import math
from pathlib import Path

import torch
from einops import rearrange
from torch.distributions import kl_divergence
from torch.utils.data import default_collate

from mmmae.data.moving_digits.dataset import MovingDigits
from mmmae.data.view_pairs import FramePairs
from mmmae.eval.evaluate import load_source
from mmmae.generate import fill, target_pixels
from mmmae.masking.rng import MaskRNG
from mmmae.model import MaskedAutoencoder
from mmmae.types import MaskPlan, Tokens

VIEW = "view2"


def test_pairs(clips: int) -> dict:
    """`clips` test-split frame pairs at the parsed config's clip size, collated."""
    pairs = FramePairs(dataset=MovingDigits(split="test", num_samples=clips))
    samples = [pairs[i] for i in range(clips)]
    return default_collate([{k: s[k] for k in ("view1", "view2")} for s in samples])


def plan_of(model: MaskedAutoencoder, batch: dict, seed: int) -> tuple[Tokens, MaskPlan]:
    tokens = model.modalities[VIEW].tokenize(batch[VIEW])
    return tokens, model.modalities[VIEW].mask(tokens, batch, MaskRNG.seeded(seed))


def as_pixels(model: MaskedAutoencoder, tokens: Tokens, plan: MaskPlan, predicted: torch.Tensor,
              pixels: torch.Tensor, own_statistics: bool) -> torch.Tensor:
    """Predicted targets (B, Q, P) at plan.predict, the true ones elsewhere -> the frame (B, C, 1, H, W)."""
    target = tokens.target.scatter(1, plan.predict[..., None].expand_as(predicted), predicted)
    known = torch.ones(target.shape[:2], dtype=torch.bool)
    if not own_statistics:
        known = known.scatter(1, plan.predict, False)
    return target_pixels(model, VIEW, target, tokens.grid, pixels, known).clamp(0, 1)


def hidden_pixels(frames: torch.Tensor, plan: MaskPlan, patch: int) -> torch.Tensor:
    """Frames (..., B, C, 1, H, W) -> the pixels of the hidden patches (..., B, Q, C p p)."""
    patches = rearrange(frames, "... b c t (h p1) (w p2) -> ... b (t h w) (p1 p2 c)", p1=patch, p2=patch)
    index = plan.predict[..., None].expand(*patches.shape[:-2], -1, patches.shape[-1])
    return patches.gather(-2, index)


def psnr(predicted: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Per clip: (..., B, Q, p) pixels -> (..., B) dB."""
    return -10 * torch.log10(((predicted - truth) ** 2).mean(dim=(-2, -1)))


def summary(values: torch.Tensor, digits: int = 2) -> str:
    """Mean over clips ± the half-width of its 95 % normal interval."""
    half = 1.96 * values.std().item() / math.sqrt(values.numel())
    return f"{values.mean().item():.{digits}f} ± {half:.{digits}f}"


def probe_lines(run: Path) -> list[str]:
    """The run's linear probes (summary.json): test accuracy and its 95 % interval, pretrained and at init."""
    def accuracy(result: dict) -> str:
        low, high = result["test_accuracy_ci"]
        return f"{result['test_accuracy']:.3f} ({low:.3f}-{high:.3f})"
    evaluations = json.loads((run / "summary.json").read_text())["evaluations"]
    return [f"linear probe {e['pretrained']['modality']} ({e['pretrained']['label']}): pretrained "
            f"{accuracy(e['pretrained'])}, random_init {accuracy(e['random_init'])}"
            for e in evaluations if e["kind"] == "linear_probe"]


@torch.no_grad()
def measure(args) -> dict:
    rows, figure_rows, diversity, kl = {}, {}, None, None
    for role, run in (("regression", args.regression), ("variational", args.variational)):
        _, model, _ = load_source(run)
        model.eval()
        batch = test_pairs(args.clips)
        tokens, plan = plan_of(model, batch, args.seed)
        patch = model.modalities[VIEW].tokenizer.kernel[-1]
        truth = hidden_pixels(batch[VIEW], plan, patch)
        generator = torch.Generator().manual_seed(args.seed)
        samples = args.samples if role == "variational" else 1
        predicted = fill(model, batch, VIEW, plan, num_samples=samples, generator=generator)  # (S, B, Q, P)
        for own in (False, True):
            frames = torch.stack([as_pixels(model, tokens, plan, p, batch[VIEW], own) for p in predicted])
            hidden = hidden_pixels(frames, plan, patch)  # (S, B, Q, p)
            stats = "own" if own else "borrowed"
            if role == "regression":
                rows[f"regression ({stats} statistics)"] = psnr(hidden[0], truth)
                figure_rows.setdefault("regression", frames[0])
                continue
            rows[f"prior sample, mean of {samples} PSNRs ({stats})"] = psnr(hidden, truth).mean(0)
            rows[f"best of {samples} prior samples ({stats})"] = psnr(hidden, truth).amax(0)
            rows[f"mean of {samples} prior samples ({stats})"] = psnr(hidden.mean(0), truth)
            mean_z = fill(model, batch, VIEW, plan, temperature=0.0)[0]
            rows[f"prior mean z ({stats})"] = psnr(hidden_pixels(as_pixels(model, tokens, plan, mean_z, batch[VIEW],
                                                                           own), plan, patch), truth)
            outputs = model(batch, MaskRNG.seeded(args.seed)).outputs
            posterior = outputs[VIEW].prediction
            rows[f"posterior mean z: sees the future ({stats})"] = psnr(
                hidden_pixels(as_pixels(model, tokens, plan, posterior, batch[VIEW], own), plan, patch), truth)
            if not own:
                diversity = hidden.std(0).mean(dim=(-2, -1))  # per clip: the per-pixel std over the samples
                encoded = {m: o.encoded for m, o in outputs.items()}
                kl = kl_divergence(model.decoder.posterior_of(encoded, {m: o.tokens for m, o in outputs.items()}),
                                   model.decoder.prior_of(encoded))
                figure_rows["samples"] = frames
        figure_rows.update(past=batch["view1"], future=batch[VIEW], plan=plan, patch=patch)
    return {"rows": rows, "diversity": diversity, "kl": kl.sum(-1), "figure": figure_rows,
            "probes": {role: probe_lines(Path(run)) for role, run in (("regression", args.regression),
                                                                       ("variational", args.variational))}}


def draw(figure: dict, path: Path, clips: int = 6) -> None:
    """Per clip (rows): past, future with its hidden patches grey, regression, 4 prior samples."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plan, patch, future = figure["plan"], figure["patch"], figure["future"]
    rows, cols = future.shape[-2] // patch, future.shape[-1] // patch
    hidden = torch.zeros(plan.predict.shape[0], rows * cols, dtype=torch.bool).scatter(1, plan.predict, True)
    hidden = hidden.view(-1, 1, 1, rows, cols).repeat_interleave(patch, -2).repeat_interleave(patch, -1)
    masked = torch.where(hidden, torch.full_like(future, 0.5), future)
    columns = [("past", figure["past"]), ("future, masked", masked), ("future", future),
               ("regression", figure["regression"])]
    columns += [(f"sample {i + 1}", s) for i, s in enumerate(figure["samples"][:4])]
    fig, axes = plt.subplots(clips, len(columns), figsize=(1.3 * len(columns), 1.3 * clips))
    for row in range(clips):
        for col, (title, frames) in enumerate(columns):
            ax = axes[row, col]
            ax.imshow(frames[row, :, 0].permute(1, 2, 0).numpy())
            ax.set_xticks([]), ax.set_yticks([])
            if row == 0:
                ax.set_title(title, fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--regression", required=True, help="a SiamMAE run directory")
    parser.add_argument("--variational", required=True, help="a SiamMCVAE run directory")
    parser.add_argument("--clips", type=int, default=512)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--figure", type=Path)
    args = parser.parse_args()
    result = measure(args)
    print(f"| future frame, {args.clips} test pairs, hidden patches | PSNR dB (95 % CI) |\n|---|---|")
    for name, values in result["rows"].items():
        print(f"| {name} | {summary(values)} |")
    print(f"diversity (per-pixel std over {args.samples} prior samples, hidden pixels in [0, 1], mean over clips): "
          f"{summary(result['diversity'], 5)}")
    print(f"KL(q || p) on the test pairs, nats (no free bits): {summary(result['kl'])}")
    for role, lines in result["probes"].items():
        print(f"{role}: " + " | ".join(lines))
    if args.figure:
        draw(result["figure"], args.figure)


if __name__ == "__main__":
    main()
