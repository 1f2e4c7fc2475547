"""Clip figures (video tubelets, frames): rows of frames for the input, what the encoder sees,
what the decoder predicts and the reconstruction."""

from collections.abc import Callable

import numpy as np
import torch
from einops import rearrange
from matplotlib.figure import Figure

from mmmae.types import MaskPlan
from mmmae.viz_figure import DPI, new_figure, whole_title

LABEL_WIDTH = 1.5  # inches for the row labels on the left ("sample 0\ndecoder predicts")
IMAGES_PER_ROW = 3  # single images (input, encoder sees, decoder predicts) side by side


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


def rows_figure(rows: dict[str, torch.Tensor], title: str) -> Figure:
    """One row per entry (its label on the left) x T frames, all (C, T, H, W) in [0, 1]; single
    images (T = 1) three to a row, each titled with its label. Every panel is at least 1 inch and
    at least one display pixel per image pixel."""
    first = next(iter(rows.values()))
    frames, panel = first.shape[1], max(1.0, max(first.shape[2:]) / DPI)
    if frames == 1:
        return _images_figure(rows, title, panel)
    fig = new_figure((panel + 0.1) * frames + LABEL_WIDTH, (panel + 0.1) * len(rows) + 0.8)
    axes = fig.subplots(len(rows), frames, squeeze=False)
    for r, (label, clip) in enumerate(rows.items()):
        images = _frames(clip)
        for t in range(frames):
            _show(axes[r, t], images[t])
            if r == 0:
                axes[r, t].set_title(f"frame {t}", fontsize=8)
        axes[r, 0].set_ylabel(label.replace(": ", "\n"), fontsize=9, rotation=0, ha="right", va="center")
    whole_title(fig, title)
    return fig


def _images_figure(rows: dict[str, torch.Tensor], title: str, panel: float) -> Figure:
    """Single images (C, 1, H, W), IMAGES_PER_ROW to a row, each titled with its label."""
    columns = min(IMAGES_PER_ROW, len(rows))
    lines = -(-len(rows) // columns)
    fig = new_figure((panel + 0.4) * columns + 0.2, (panel + 0.5) * lines + 0.9)
    axes = fig.subplots(lines, columns, squeeze=False)
    for axis in axes.flat[len(rows):]:
        axis.set_axis_off()
    for axis, (label, clip) in zip(axes.flat, rows.items()):
        _show(axis, _frames(clip)[0])
        axis.set_title(label.replace(": ", "\n"), fontsize=9)
    whole_title(fig, title)
    return fig


def _frames(clip: torch.Tensor) -> np.ndarray:
    """(C, T, H, W) in [0, 1] -> (T, H, W, C) float numpy."""
    return rearrange(clip.detach().float().cpu().clamp(0, 1), "c t h w -> t h w c").numpy()


def _show(axis, image) -> None:
    """One (H, W, C) image without ticks; one channel in grey."""
    axis.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=1,
                interpolation="nearest")
    axis.set_xticks([])
    axis.set_yticks([])


def clip_mask_figure(tokenizer, clips: torch.Tensor, plan: MaskPlan, title: str) -> Figure:
    """Per sample of clips (B, C, T, H, W): the input, what the encoder sees and what the decoder
    predicts (every other token blacked out)."""
    image, kernel, grid = tokenizer.figure_image(clips.cpu())
    rows = {}
    for i in range(image.shape[0]):
        rows[f"sample {i}: input"] = image[i]
        rows[f"sample {i}: encoder sees"] = masked_input(image[i], plan.keep[i].cpu(), grid, kernel)
        rows[f"sample {i}: decoder predicts"] = masked_input(image[i], plan.predict[i].cpu(), grid, kernel)
    return rows_figure(rows, f"{title}\nblack: tokens left out of that row")


def clip_reconstruction_figure(tokenizer, clips: torch.Tensor, prediction: torch.Tensor, plan: MaskPlan,
                               sample: int, title: str) -> Figure:
    """Sample `sample` of clips (B, C, T, H, W): input, what the encoder sees (the rest black), and
    the input with the predictions (B, Q, P) pasted at the predicted tokens."""
    image, kernel, grid = tokenizer.figure_image(clips[sample:sample + 1].cpu())
    masked, recon = reconstruction_panels(image[0], prediction[sample].detach().cpu(), plan.keep[sample].cpu(),
                                          plan.predict[sample].cpu(), grid, kernel, tokenizer.figure_pixels)
    rows = {"input": image[0], "encoder sees": masked, "prediction": recon}
    return rows_figure(rows, f"{title}\nprediction: the input with the predicted tokens pasted in")
