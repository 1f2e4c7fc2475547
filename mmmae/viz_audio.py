"""Spectrogram figures: the log-mel fbank with time (s) and frequency (Hz) axes, the tokens that
are hidden or predicted shaded over it, so that the spectrogram stays visible under the mask."""

import torch
from matplotlib.axes import Axes
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from mmmae.tokenizers.audio import AudioTokenizer
from mmmae.types import MaskPlan
from mmmae.viz import reconstruction_panels
from mmmae.viz_figure import PREDICTED_COLOUR, new_figure, whole_title

HIDDEN_TINT = "tab:blue"  # on a grey-scale spectrogram, where the grey of other figures would not show
PANEL = (4.4, 2.3)  # inches per spectrogram panel: 1 s of audio reads as a picture, not a strip


def patch_boxes(tokens: torch.Tensor, grid: tuple[int, int], patch: int, frame_s: float) -> list[tuple]:
    """Token ids (K,) on the (time, frequency) grid (T', F'), token t * F' + f ->
    (start s, mel bin, width s, height in bins) of each patch."""
    boxes = []
    for token in tokens.tolist():
        t, f = divmod(token, grid[1])
        boxes.append((t * patch * frame_s, f * patch, patch * frame_s, patch))
    return boxes


def draw_spectrogram(ax: Axes, image: torch.Tensor, frame_s: float, centres_hz: torch.Tensor, title: str) -> None:
    """image (T, F) in [0, 1] with time across (s) and frequency up (ticks in Hz at mel bin centres)."""
    frames, bins = image.shape
    ax.imshow(image.T.numpy(), origin="lower", aspect="auto", cmap="gray", vmin=0, vmax=1,
              extent=(0, frames * frame_s, 0, bins), interpolation="nearest")
    ticks = torch.linspace(0, bins - 1, 5).round().long()
    ax.set_yticks((ticks + 0.5).tolist(), [f"{centres_hz[i]:.0f}" for i in ticks.tolist()])
    ax.set_xlabel("time (s)", fontsize=8)
    ax.set_ylabel("frequency (Hz, mel scale)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title(title, fontsize=9)


def shade(ax: Axes, boxes: list[tuple], colour: str, hatch: str | None) -> None:
    """Cover each box with a semi-transparent tint of `colour`, hatched in it when `hatch` (what lies
    under it stays visible)."""
    for x, y, w, h in boxes:
        ax.add_patch(Rectangle((x, y), w, h, facecolor=to_rgba(colour, 0.4), edgecolor=to_rgba(colour, 0.9),
                               hatch=hatch, linewidth=1.0))


def outline(ax: Axes, boxes: list[tuple], colour: str) -> None:
    """Frame each box in `colour`, leaving its inside untouched."""
    for x, y, w, h in boxes:
        ax.add_patch(Rectangle((x, y), w, h, fill=False, edgecolor=colour, linewidth=1.2))


def hidden_tokens(keep: torch.Tensor, num_tokens: int) -> torch.Tensor:
    """The token ids (N - K,) not in keep (K,)."""
    seen = torch.zeros(num_tokens, dtype=torch.bool)
    seen[keep.cpu()] = True
    return (~seen).nonzero().flatten()


def audio_mask_figure(tokenizer: AudioTokenizer, audio: torch.Tensor, plan: MaskPlan, title: str) -> Figure:
    """Per sample of audio (B, S) or fbanks (B, T, F): the spectrogram with the tokens hidden from
    the encoder hatched grey (left) and the tokens the decoder predicts hatched orange (right)."""
    image, _, _ = tokenizer.figure_image(audio.cpu())
    frame_s, centres = tokenizer.figure_axes()
    grid, patch, num_tokens = tokenizer.grid, tokenizer.kernel[0], tokenizer.grid[0] * tokenizer.grid[1]
    samples = image.shape[0]
    fig = new_figure(2 * PANEL[0], PANEL[1] * samples + 0.8)
    axes = fig.subplots(samples, 2, squeeze=False)
    for i in range(samples):
        spectrogram = image[i, 0, 0]
        draw_spectrogram(axes[i, 0], spectrogram, frame_s, centres, f"sample {i}: encoder sees (blue: hidden)")
        shade(axes[i, 0], patch_boxes(hidden_tokens(plan.keep[i], num_tokens), grid, patch, frame_s), HIDDEN_TINT, "//")
        draw_spectrogram(axes[i, 1], spectrogram, frame_s, centres, f"sample {i}: decoder predicts (orange)")
        shade(axes[i, 1], patch_boxes(plan.predict[i].cpu(), grid, patch, frame_s), PREDICTED_COLOUR, None)
    whole_title(fig, f"{title}\nlog-mel spectrogram, scaled to [0, 1] per sample; shaded: {patch}x{patch} patches")
    return fig


def audio_reconstruction_figure(tokenizer: AudioTokenizer, audio: torch.Tensor, prediction: torch.Tensor,
                                plan: MaskPlan, sample: int, title: str) -> Figure:
    """Sample `sample`: the spectrogram; what the encoder sees (hidden tokens hatched grey); the
    spectrogram with the predictions (B, Q, P) pasted at the predicted tokens (outlined orange),
    per-patch target normalisation undone with the true patch's statistics."""
    image, kernel, grid = tokenizer.figure_image(audio[sample:sample + 1].cpu())
    keep, predict = plan.keep[sample].cpu(), plan.predict[sample].cpu()
    _, recon = reconstruction_panels(image[0], prediction[sample].detach().cpu(), keep, predict, grid, kernel,
                                     tokenizer.figure_pixels)
    frame_s, centres = tokenizer.figure_axes()
    patch, num_tokens = tokenizer.kernel[0], tokenizer.grid[0] * tokenizer.grid[1]
    fig = new_figure(3 * PANEL[0], PANEL[1] + 1.0)
    axes = fig.subplots(1, 3)
    draw_spectrogram(axes[0], image[0, 0, 0], frame_s, centres, "input")
    draw_spectrogram(axes[1], image[0, 0, 0], frame_s, centres, "encoder sees (blue: hidden)")
    shade(axes[1], patch_boxes(hidden_tokens(keep, num_tokens), tokenizer.grid, patch, frame_s), HIDDEN_TINT, "//")
    draw_spectrogram(axes[2], recon[0, 0], frame_s, centres, "prediction (orange: predicted patches)")
    outline(axes[2], patch_boxes(predict, tokenizer.grid, patch, frame_s), PREDICTED_COLOUR)
    whole_title(fig, f"{title}\nlog-mel spectrogram, scaled to [0, 1]")
    return fig
