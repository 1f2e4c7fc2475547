"""What every figure shares: whole (wrapped) titles, a fixed resolution, and per-token states
(what the encoder sees, what the decoder predicts) of a mask plan."""

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from mmmae.types import MaskPlan  # noqa: E402

DPI = 100
TITLE_SIZE = 11
# token states of a mask figure
MASKED, PREDICTED, VISIBLE = 0, 1, 2
# colours of the token states, shared by every modality's figure
HIDDEN_COLOUR, PREDICTED_COLOUR = "0.55", "tab:orange"


def token_states(plan: MaskPlan, num_tokens: int) -> torch.Tensor:
    """(B, N) int: VISIBLE where the encoder sees the token, PREDICTED where the decoder predicts
    it (and the encoder does not see it), MASKED elsewhere."""
    states = torch.full((plan.keep.shape[0], num_tokens), MASKED, dtype=torch.long)
    states.scatter_(1, plan.predict.cpu(), PREDICTED)
    return states.scatter_(1, plan.keep.cpu(), VISIBLE)


def new_figure(width: float, height: float) -> Figure:
    """A figure of width x height inches (at DPI) whose layout keeps titles and labels inside it."""
    return plt.figure(figsize=(width, height), dpi=DPI, layout="constrained")


def whole_title(fig: Figure, text: str, size: float = TITLE_SIZE) -> None:
    """The figure's title, each line wrapped to the figure's width (never cut)."""
    chars = max(20, int(fig.get_figwidth() * 72 / (0.55 * size)))  # an average glyph is about 0.55 em wide
    lines = [textwrap.fill(line, chars) for line in text.splitlines()]
    fig.suptitle("\n".join(lines), fontsize=size)


def save_figure(fig: Figure, path: Path) -> Path:
    """Write fig as a PNG at DPI (its folder made if needed), then close it; returns path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
