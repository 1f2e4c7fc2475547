"""Energy guidance with `mmmae.score` (docs/guidance.md): corrupt MovingDigits test clips, then take gradient
steps on the pixels toward lower energy under the frozen zoo model; print the energy and the PSNR to the
clean clips before and after, and draw one clip (clean, corrupted, guided).

    python tools/guidance_example.py [--corruption noise|box] [--steps 80] [--lr 0.002] [--clips 8]
        [--figure docs/figures/guidance_example.png]

The energy printed is measured with one fixed set of masks (seed 0), the steps draw fresh masks each
(seed 1 onwards), so the printed drop is not the steps fitting the masks they were taken on. With
`--corruption box` only the box is changed (the rest of the clip is known).
"""

import argparse
from pathlib import Path

import torch

import mmmae
from mmmae.data.moving_digits.dataset import MovingDigits
from mmmae.energy import energies
from mmmae.viz import rows_figure
from mmmae.viz_figure import save_figure
from mmmae.zoo.pretrained import from_pretrained


def psnr(x: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """(B,) peak signal-to-noise ratio in dB of clips in [0, 1]."""
    return -10 * torch.log10((x - clean).pow(2).mean(dim=(1, 2, 3, 4)))


def corrupt(clips: torch.Tensor, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The corrupted clips and where the guidance may change them (B, 1, T, H, W)."""
    if kind == "noise":
        noise = 0.2 * torch.randn(clips.shape, generator=torch.Generator().manual_seed(123))
        return (clips + noise).clamp(0, 1), torch.ones_like(clips[:, :1], dtype=torch.bool)
    corrupted, region = clips.clone(), torch.zeros_like(clips[:, :1], dtype=torch.bool)
    corrupted[..., 4:12, 4:12] = clips.roll(1, dims=0)[..., 0:8, 0:8]  # another clip's corner pasted in
    region[..., 4:12, 4:12] = True
    return corrupted, region


def guide(model, clips: torch.Tensor, region: torch.Tensor, steps: int, lr: float) -> torch.Tensor:
    """Adam steps on the pixels inside `region` toward lower mean energy, kept in [0, 1]."""
    pixels = clips.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([pixels], lr=lr)
    for step in range(steps):
        optimizer.zero_grad()
        mmmae.score(model, pixels, generator=torch.Generator().manual_seed(1 + step)).backward()
        pixels.grad.mul_(region)
        optimizer.step()
        with torch.no_grad():
            pixels.clamp_(0, 1)
    return pixels.detach()


def at_least_one(text: str) -> int:
    """An argparse type: an integer >= 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corruption", choices=("noise", "box"), default="noise")
    parser.add_argument("--steps", type=at_least_one, default=80)
    parser.add_argument("--lr", type=float, default=0.002)
    parser.add_argument("--clips", type=at_least_one, default=8)
    parser.add_argument("--figure", type=Path, default=None)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = from_pretrained("tiny-video-movingdigits").requires_grad_(False)
    data = MovingDigits(split="test", num_samples=args.clips, frames=8, size=16, digit_size=12, modalities=("video",))
    clean = torch.stack([data[i]["video"] for i in range(args.clips)])
    corrupted, region = corrupt(clean, args.corruption)
    guided = guide(model, corrupted, region, args.steps, args.lr)
    with torch.no_grad():
        for name, clips in (("clean", clean), ("corrupted", corrupted), ("guided", guided)):
            energy = energies(model, clips, generator=torch.Generator().manual_seed(0))
            quality = psnr(clips, clean)
            shown = "" if name == "clean" else f", PSNR to clean {quality.mean():.2f} dB (min {quality.min():.2f})"
            print(f"{name}: energy {energy.mean():.4f} (per clip {energy.min():.4f}-{energy.max():.4f}){shown}")
    if args.figure:
        rows = {"clean": clean[0], f"corrupted ({args.corruption})": corrupted[0],
                f"guided ({args.steps} steps)": guided[0]}
        print(save_figure(rows_figure(rows, f"energy guidance with mmmae.score ({args.corruption})"), args.figure))


if __name__ == "__main__":
    main()
