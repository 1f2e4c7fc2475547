"""IMU figures: per device, its standardised channels against time (s), the time windows of the
tokens that are hidden or predicted shaded (token (t, d) covers window t of device d)."""

import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from mmmae.tokenizers.imu import IMUGraphTokenizer
from mmmae.types import MaskPlan
from mmmae.viz_figure import (
    HIDDEN_COLOUR,
    MASKED,
    PREDICTED,
    PREDICTED_COLOUR,
    VISIBLE,
    new_figure,
    token_states,
    whole_title,
)

PANEL = (3.6, 1.7)  # inches per device panel
SIX_AXES = ("acc x", "acc y", "acc z", "gyro x", "gyro y", "gyro z")  # the 6-channel layout (acceleration, gyro)
CHANNEL_COLOURS = ("tab:blue", "tab:green", "tab:red", "tab:purple", "tab:brown", "black")  # none orange or grey
SPAN_STYLE = {MASKED: {"color": HIDDEN_COLOUR, "hatch": "//"}, PREDICTED: {"color": PREDICTED_COLOUR, "hatch": None}}
SPAN_LABEL = {MASKED: "hidden, not predicted", PREDICTED: "hidden and predicted"}


def token_spans(states: torch.Tensor, grid: tuple[int, int], window: float) -> list[list[tuple[float, float, int]]]:
    """One sample's token states (N,) on the (time, device) grid (T', V), token t * V + d ->
    per device, (start s, end s, state) of each run of consecutive windows in the same state
    other than VISIBLE."""
    spans = []
    for row in states.view(grid).T.tolist():  # (V, T')
        runs = []  # [first window, last window + 1, state]
        for t, state in enumerate(row):
            if runs and runs[-1][2] == state and runs[-1][1] == t:
                runs[-1][1] = t + 1
            elif state != VISIBLE:
                runs.append([t, t + 1, state])
        spans.append([(start * window, end * window, state) for start, end, state in runs])
    return spans


def channel_labels(count: int) -> list[str]:
    """Legend names: the 6-channel IMU layout (3-axis acceleration, then 3-axis gyro), else channel numbers."""
    return list(SIX_AXES) if count == len(SIX_AXES) else [f"channel {c}" for c in range(count)]


def channel_colour(channel: int) -> str:
    """A channel's line colour (CHANNEL_COLOURS in turn)."""
    return CHANNEL_COLOURS[channel % len(CHANNEL_COLOURS)]


def draw_signal(ax: Axes, signal: torch.Tensor, rate: float, title: str) -> None:
    """signal (T_d, C) against time (s) at `rate` Hz, one line per channel (colours in channel order)."""
    time = torch.arange(signal.shape[0]) / rate
    for c in range(signal.shape[1]):
        ax.plot(time.numpy(), signal[:, c].numpy(), color=channel_colour(c), linewidth=1.0)
    ax.set_xlim(0, signal.shape[0] / rate)
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)


def shade_spans(ax: Axes, spans: list[tuple[float, float, int]]) -> None:
    """Shade each (start, end, state) span in its state's colour, the signal visible under it."""
    for start, end, state in spans:
        style = SPAN_STYLE[state]
        ax.axvspan(start, end, facecolor=style["color"], alpha=0.3, hatch=style["hatch"], edgecolor=style["color"],
                   linewidth=0)


def legend_handles(channels: int, spans: list[list[tuple[float, float, int]]]) -> list:
    """Channel lines, then the shadings of the states that occur in spans (lists of (start, end, state))."""
    states = sorted({state for runs in spans for _, _, state in runs}, reverse=True)
    lines = [Line2D([], [], color=channel_colour(c), label=label) for c, label in enumerate(channel_labels(channels))]
    shades = [Patch(facecolor=SPAN_STYLE[s]["color"], alpha=0.3, hatch=SPAN_STYLE[s]["hatch"], label=SPAN_LABEL[s])
              for s in states]
    return lines + shades


def legend_columns(fig: Figure, entries: int) -> int:
    """Legend columns that fit the figure's width (about 1.7 inches an entry at font size 8)."""
    return max(1, min(entries, int(fig.get_figwidth() / 1.7)))


def imu_mask_figure(tokenizer: IMUGraphTokenizer, signals: dict[str, torch.Tensor], plan: MaskPlan,
                    title: str) -> Figure:
    """A panel per device (rows) and sample (columns) of signals {device: (B, T_d, C)}: the
    standardised channels, the windows hidden from the encoder shaded (orange where the decoder
    predicts them, hatched grey where it does not)."""
    signals = tokenizer.figure_signals({name: x.cpu() for name, x in signals.items()})
    grid = (tokenizer.num_windows(signals), len(tokenizer.devices))
    states = token_states(plan, grid[0] * grid[1])
    samples = states.shape[0]
    fig = new_figure(PANEL[0] * samples + 0.4, PANEL[1] * grid[1] + 1.4)
    axes = fig.subplots(grid[1], samples, squeeze=False, sharex=True)
    shaded = []
    for i in range(samples):
        spans_of_devices = token_spans(states[i], grid, tokenizer.window)
        shaded += spans_of_devices
        for d, (name, spans) in enumerate(zip(tokenizer.devices, spans_of_devices)):
            draw_signal(axes[d, i], signals[name][i], tokenizer.sample_rates[name], f"sample {i}: {name}")
            shade_spans(axes[d, i], spans)
            axes[d, 0].set_ylabel("standardised", fontsize=8)
        axes[-1, i].set_xlabel("time (s)", fontsize=8)
    handles = legend_handles(max(tokenizer.channels.values()), shaded)
    fig.legend(handles=handles, loc="outside lower center", ncol=legend_columns(fig, len(handles)), fontsize=8)
    whole_title(fig, f"{title}\nunshaded: windows the encoder sees ({tokenizer.window:g} s per token)")
    return fig


def imu_reconstruction_figure(tokenizer: IMUGraphTokenizer, signals: dict[str, torch.Tensor],
                              prediction: torch.Tensor, plan: MaskPlan, sample: int, title: str) -> Figure:
    """Sample `sample` of signals {device: (B, T_d, C)}, a panel per device: the standardised
    channels (solid), the predicted windows shaded orange with the prediction (dashed) in the
    target's space: each window resampled to target_samples, with norm_target its own mean and
    std restored from the input (MAE's visualisation)."""
    one = {name: x[sample:sample + 1].detach().cpu().float() for name, x in signals.items()}
    standardised, truth = tokenizer.figure_signals(one), tokenizer.figure_windows(one)[0]
    predict = plan.predict[sample].cpu()
    restored = tokenizer.figure_restore(prediction[sample].detach().cpu().float(), truth[predict], predict)
    devices, samples = len(tokenizer.devices), tokenizer.target_samples
    grid = (tokenizer.num_windows(one), devices)
    states = token_states(MaskPlan(keep=plan.keep[sample:sample + 1], predict=predict[None]), grid[0] * grid[1])
    fig = new_figure(2 * PANEL[0] + 0.6, PANEL[1] * devices + 1.4)
    axes = fig.subplots(devices, 1, squeeze=False, sharex=True)[:, 0]
    spans_of_devices = token_spans(states[0], grid, tokenizer.window)
    for d, (name, spans) in enumerate(zip(tokenizer.devices, spans_of_devices)):
        rate, width = tokenizer.sample_rates[name], tokenizer.windows[name]
        draw_signal(axes[d], standardised[name][0], rate, name)
        shade_spans(axes[d], spans)
        axes[d].set_ylabel("standardised", fontsize=8)
        axes[d].set_xlabel("time (s)" if d == devices - 1 else "", fontsize=8)
        for token, window in zip(predict.tolist(), restored):
            if token % devices != d:
                continue
            # F.interpolate (align_corners=False) puts output k at input position (k + 0.5) * w / S - 0.5
            time = ((token // devices) * width + (torch.arange(samples) + 0.5) * width / samples - 0.5) / rate
            for c in range(tokenizer.channels[name]):
                axes[d].plot(time.numpy(), window[:, c].numpy(), color=channel_colour(c), linestyle="--",
                             linewidth=1.4)
    handles = legend_handles(max(tokenizer.channels.values()), spans_of_devices)
    handles.append(Line2D([], [], color="black", linestyle="--", label="prediction"))
    fig.legend(handles=handles, loc="outside lower center", ncol=legend_columns(fig, len(handles)), fontsize=8)
    whole_title(fig, f"{title}\nsolid: input, dashed: prediction ({samples} samples per window; with "
                     "norm_target each window's mean and std restored from the input)")
    return fig
