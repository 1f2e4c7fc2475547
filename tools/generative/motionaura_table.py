"""The measurements of docs/motionaura.md: a VQ tokenizer and a masked code model on MovingDigits.

    python tools/generative/motionaura_table.py --vq runs/vq_video --mcm runs/motionaura

VQ (--vq, a run of recipes/vq_video.gin or a zoo name): reconstruction PSNR of test clips through
its codes, codebook usage and perplexity (exp of the entropy of the code histogram).
MCM (--mcm, a run of recipes/motionaura.gin): code accuracy at hidden positions (random masks at
--ratio, and a centre box of --box x --box tokens in every frame), against the most frequent code
(unigram) and the VQ's own codes; inpainting of the box with MaskGITDecoder.fill (--samples draws a
clip, --steps iterations, temperature --temperature): PSNR over the box's pixels of the decoded
clip against the true clip, best of the draws and their mean, beside the PSNR of the VQ's own codes
there (the ceiling); diversity: the mean share of box codes two draws disagree on, and the mean
pixel RMS between two draws over the box. Test clips of MovingDigits at the recipes' clip size.
Prints a Markdown table and writes it with the numbers as JSON (--out).
"""

import argparse
import itertools
import json
import math
from pathlib import Path

import torch
from einops import rearrange

from mmmae.data.moving_digits.dataset import MovingDigits
from mmmae.inpaint import blanked
from mmmae.masking.base import split_by_noise
from mmmae.tokenizers.codes import FrozenVQ
from mmmae.types import MaskPlan, gather_tokens
from mmmae.zoo.pretrained import from_pretrained

CLIP = {"frames": 8, "size": 16, "digit_size": 12, "min_speed": 0.25, "max_speed": 0.5}  # models/tiny_cpu.gin


def test_clips(count: int) -> torch.Tensor:
    data = MovingDigits(split="test", num_samples=count, modalities=["video"], **CLIP)
    return torch.stack([data[i]["video"] for i in range(count)])


def psnr(pixels: torch.Tensor, truth: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Per clip, over the pixels where region (1, 1, T, H, W) is True: 10 log10(1 / MSE), pixels in [0, 1]."""
    weight = region.expand_as(truth).float()
    mse = ((pixels - truth) ** 2 * weight).flatten(1).sum(1) / weight.flatten(1).sum(1)
    return 10 * torch.log10(1 / mse.clamp_min(1e-10))


def vq_rows(vq, video: torch.Tensor) -> dict:
    decoder = vq.modalities["video"].decoder
    encoded, _ = vq.encode({"video": video}, "video")
    codes = decoder.codes(encoded)
    counts = torch.bincount(codes.flatten(), minlength=decoder.num_codes).float()
    p = counts[counts > 0] / counts.sum()
    pixels = codes_to_pixels(FrozenVQ("vq", vq, "video"), codes, vq.modalities["video"].tokenizer.grid(video.shape))
    whole = torch.ones(1, 1, *video.shape[2:], dtype=torch.bool)
    return {"vq_psnr": psnr(pixels, video, whole).mean().item(), "codes_used": int((counts > 0).sum()),
            "codes": decoder.num_codes, "perplexity": math.exp(-(p * p.log()).sum().item())}


def codes_to_pixels(frozen: FrozenVQ, codes: torch.Tensor, grid: tuple[int, ...]) -> torch.Tensor:
    """Codes (B, N) -> pixels (B, C, T, H, W) in [0, 1] through the VQ's decoder (VideoCodes.decode_targets)."""
    t, p1, p2 = frozen.tokenizer.target_kernel
    patches = frozen.decode(codes, grid)
    return rearrange(patches, "b (t h w) (p0 p1 p2 c) -> b c (t p0) (h p1) (w p2)", t=grid[0], h=grid[1], w=grid[2],
                     p0=t, p1=p1, p2=p2).clamp(0, 1)


def box_plan(batch: int, grid: tuple[int, int, int], box: int) -> MaskPlan:
    """Hide a centred box x box of tokens in every frame."""
    frames, height, width = grid
    hidden = torch.zeros(grid, dtype=torch.bool)
    top, left = (height - box) // 2, (width - box) // 2
    hidden[:, top:top + box, left:left + box] = True
    flat = hidden.flatten()
    return MaskPlan(keep=(~flat).nonzero()[:, 0].repeat(batch, 1), predict=flat.nonzero()[:, 0].repeat(batch, 1))


def accuracy(mcm, video: torch.Tensor, plan: MaskPlan, codes: torch.Tensor) -> float:
    """Greedy code accuracy at plan.predict from one pass of the encoder and decoder."""
    source = mcm.modalities["video"]
    tokens = source.tokenize(video)
    encoded, _, _ = mcm.run_encoder({"video": gather_tokens(tokens.embed, plan.keep)}, {"video": None},
                                    {"video": None})
    logits = source.decoder(encoded["video"], tokens.grid, plan)
    return (logits.argmax(-1) == codes.gather(1, plan.predict)).float().mean().item()


def mcm_rows(mcm, video: torch.Tensor, args: argparse.Namespace) -> dict:
    source = mcm.modalities["video"]
    tokens = source.tokenize(video)
    codes, grid, batch = tokens.target, tokens.grid, video.shape[0]
    total = codes.shape[1]
    noise = torch.rand(batch, total, generator=torch.Generator().manual_seed(0))
    keep, predict = split_by_noise(noise, total - round(args.ratio * total))
    random_plan, box = MaskPlan(keep=keep, predict=predict), box_plan(batch, grid, args.box)
    unigram = torch.bincount(codes.flatten(), minlength=source.tokenizer.target_dim).argmax()
    frozen = source.tokenizer.frozen
    region = box_region(grid, args.box, frozen.tokenizer.target_kernel)
    # The box's pixels never reach the model (as in `mmmae inpaint`): the frozen VQ attends globally,
    # so the codes of visible tokens would otherwise carry the hidden content.
    seen = blanked(video, region[:, 0].expand(batch, -1, -1, -1))
    rows = {"accuracy_random": accuracy(mcm, video, random_plan, codes),
            "unigram_random": (codes.gather(1, predict) == unigram).float().mean().item(),
            "accuracy_box": accuracy(mcm, seen, box, codes),
            "unigram_box": (codes.gather(1, box.predict) == unigram).float().mean().item()}
    rows["vq_box_psnr"] = psnr(codes_to_pixels(frozen, codes, grid), video, region).mean().item()
    draws, scores = [], []
    for draw in range(args.samples):
        generator = torch.Generator().manual_seed(draw)
        filled = source.decoder.fill_codes(mcm, {"video": seen}, "video", box, generator=generator,
                                           steps=args.steps, temperature=args.temperature)
        draws.append(filled)
        scores.append(psnr(codes_to_pixels(frozen, filled, grid), video, region))
    scores = torch.stack(scores)  # (samples, B)
    pixels = [codes_to_pixels(frozen, d, grid) for d in draws]
    pairs = list(itertools.combinations(range(args.samples), 2))
    in_box, hidden = region.expand_as(video), [d.gather(1, box.predict) for d in draws]
    truth = codes.gather(1, box.predict)
    rows |= {"fill_psnr_best": scores.max(0).values.mean().item(), "fill_psnr_mean": scores.mean().item(),
             "fill_code_accuracy": torch.stack([(h == truth).float().mean() for h in hidden]).mean().item(),
             "code_disagreement": sum((hidden[a] != hidden[b]).float().mean().item()
                                      for a, b in pairs) / max(len(pairs), 1),
             "pixel_rms_between_draws": sum(((pixels[a] - pixels[b])[in_box] ** 2).mean().sqrt().item()
                                            for a, b in pairs) / max(len(pairs), 1)}
    return rows


def box_region(grid: tuple[int, int, int], box: int, kernel: tuple[int, int, int]) -> torch.Tensor:
    """The pixels (1, 1, T, H, W) of box_plan's hidden tokens."""
    hidden = box_plan(1, grid, box).predict[0]
    mask = torch.zeros(grid[0] * grid[1] * grid[2], dtype=torch.bool)
    mask[hidden] = True
    mask = mask.view(grid)
    for axis, size in enumerate(kernel):
        mask = mask.repeat_interleave(size, dim=axis)
    return mask[None, None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vq", required=True)
    parser.add_argument("--mcm")
    parser.add_argument("--clips", type=int, default=256)
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--box", type=int, default=2)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--out")
    args = parser.parse_args()
    video = test_clips(args.clips)
    with torch.no_grad():
        numbers = vq_rows(from_pretrained(args.vq), video)
        if args.mcm:
            numbers |= mcm_rows(from_pretrained(args.mcm), video, args)
    table = "\n".join(["| measure | value |", "|---|---|", *(f"| {k} | {v:.4g} |" for k, v in numbers.items())])
    print(table)
    if args.out:
        Path(args.out).write_text(json.dumps({"args": vars(args), "numbers": numbers}, indent=2) + "\n")


if __name__ == "__main__":
    main()
