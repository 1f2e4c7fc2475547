"""Reconstruction figures: input, masked input and prediction, one column per frame."""

from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from einops import rearrange  # noqa: E402


def _cut(video: torch.Tensor, kernel: tuple[int, int, int]) -> torch.Tensor:
    """(C, T, H, W) -> (N, p0*p1*p2, C), patches in token order."""
    p0, p1, p2 = kernel
    return rearrange(video, "c (t p0) (h p1) (w p2) -> (t h w) (p0 p1 p2) c", p0=p0, p1=p1, p2=p2)


def _fold(patches: torch.Tensor, grid: tuple[int, int, int], kernel: tuple[int, int, int]) -> torch.Tensor:
    """Inverse of _cut: (N, p0*p1*p2, C) -> (C, T, H, W)."""
    (t, h, w), (p0, p1, p2) = grid, kernel
    return rearrange(patches, "(t h w) (p0 p1 p2) c -> c (t p0) (h p1) (w p2)", t=t, h=h, w=w, p0=p0, p1=p1, p2=p2)


def masked_input(video: torch.Tensor, keep: torch.Tensor, grid: tuple[int, int, int],
                 kernel: tuple[int, int, int]) -> torch.Tensor:
    """What the encoder sees of one sample: video (C, T, H, W) with every token not in keep (K,) blacked out."""
    patches = _cut(video.float(), kernel)
    visible = torch.zeros_like(patches)
    visible[keep] = patches[keep]
    return _fold(visible, grid, kernel)


def reconstruction_panels(
    video: torch.Tensor, prediction: torch.Tensor, keep: torch.Tensor, predict: torch.Tensor,
    grid: tuple[int, int, int], kernel: tuple[int, int, int],
    to_pixels: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor]:
    """One sample: video (C, T, H, W) in [0, 1], the encoder's token ids keep (K,), prediction
    (Q, P) at token ids predict (Q,) -> (masked input, reconstruction), both (C, T, H, W): the
    input outside keep blacked out; the input with predicted tokens pasted in. `to_pixels`
    (the tokenizer's `figure_pixels`) maps predictions (Q, p, C) of the true patches (Q, p, C)
    back to pixels, undoing the target normalisation with the true patch statistics."""
    patches = _cut(video.float(), kernel)
    predicted = to_pixels(rearrange(prediction.float(), "q (p c) -> q p c", c=video.shape[0]), patches[predict])
    recon = patches.clone()
    recon[predict] = predicted.clamp(0, 1)
    return masked_input(video, keep, grid, kernel), _fold(recon, grid, kernel)


def save_rows_png(path: Path, rows: dict[str, torch.Tensor], title: str) -> None:
    """One row per entry x T frames, all (C, T, H, W) in [0, 1]; one channel is drawn with a
    colour map (spectrograms: time down, frequency across)."""
    frames = next(iter(rows.values())).shape[1]
    fig, axes = plt.subplots(len(rows), frames, figsize=(1.2 * frames, 1.25 * len(rows) + 0.3), squeeze=False)
    for r, (label, clip) in enumerate(rows.items()):
        images = rearrange(clip.detach().float().cpu().clamp(0, 1), "c t h w -> t h w c")
        for t in range(frames):
            image = images[t].numpy()
            axes[r, t].imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="magma")
            axes[r, t].set_xticks([])
            axes[r, t].set_yticks([])
        axes[r, 0].set_ylabel(label)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def save_reconstruction_png(path: Path, video: torch.Tensor, masked: torch.Tensor, recon: torch.Tensor, title: str) -> None:
    """Three rows (input / masked input / prediction) x T frames, all (C, T, H, W) in [0, 1]."""
    save_rows_png(path, {"input": video, "masked": masked, "prediction": recon}, title)
