"""Text figures: a caption's tokens written out in boxes, the hidden ones highlighted, and in
training the model's most likely token at each predicted position."""

from typing import NamedTuple

import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from mmmae.tokenizers.text import TextTokenizer
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

LINE_CHARS = 48  # characters per line before a caption wraps
CHAR = (0.12, 0.34)  # inches per character cell (width, line height)
RIGHT, WRONG = "tab:green", "tab:red"
STATE_COLOUR = {VISIBLE: None, PREDICTED: PREDICTED_COLOUR, MASKED: HIDDEN_COLOUR}


class Cell(NamedTuple):
    """A token as drawn: its text, its box colour (None: no box) and its width in characters."""

    text: str
    colour: str | None
    width: int


def cell(text: str, colour: str | None, width: int | None = None) -> Cell:
    """A cell as wide as its text (at least one character) unless `width` says otherwise."""
    return Cell(text, colour, width or max(1, len(text)))


def layout(widths: list[int], line_chars: int) -> list[tuple[int, int]]:
    """(line, x) of cells `widths` characters wide, left to right, wrapped before a cell that would
    pass line_chars (a cell wider than a line gets one of its own)."""
    places, line, x = [], 0, 0
    for width in widths:
        if x and x + width > line_chars:
            line, x = line + 1, 0
        places.append((line, x))
        x += width
    return places


def shown(text: str, highlighted: bool) -> str:
    """A token as drawn: a space as '␣' in a highlighted box (where blank would say nothing), a
    token with unprintable characters (control bytes) as the replacement character U+FFFD."""
    if not text.isprintable():
        return "\ufffd"
    return text.replace(" ", "\u2423") if highlighted else text


def boxes(cells: list[Cell], places: list[tuple[int, int]]) -> list[tuple[int, int, int, str]]:
    """(line, x, width, colour) of one box per run of adjacent cells of the same colour on a line."""
    runs = []
    for (_, colour, width), (line, x) in zip(cells, places):
        if colour is None:
            continue
        if runs and runs[-1][0] == line and runs[-1][1] + runs[-1][2] == x and runs[-1][3] == colour:
            runs[-1][2] += width
        else:
            runs.append([line, x, width, colour])
    return [tuple(run) for run in runs]


def draw_cells(ax: Axes, cells: list[Cell], line_chars: int, title: str) -> None:
    """Tokens written left to right in monospace, each run of coloured ones in a semi-transparent box."""
    places = layout([c.width for c in cells], line_chars)
    for line, x, width, colour in boxes(cells, places):
        ax.add_patch(Rectangle((x + 0.1, line + 0.12), width - 0.2, 0.76, facecolor=colour, alpha=0.45,
                               edgecolor=colour, linewidth=1.2))
    for (text, colour, width), (line, x) in zip(cells, places):
        ax.text(x + width / 2, line + 0.5, shown(text, colour is not None), ha="center", va="center",
                family="monospace", fontsize=11)
    ax.set_xlim(0, line_chars)
    ax.set_ylim(max((line for line, _ in places), default=0) + 1, 0)
    ax.axis("off")
    ax.set_title(title, fontsize=9, loc="left")


def lines_needed(cells: list[Cell], line_chars: int) -> int:
    """How many lines draw_cells takes for cells."""
    places = layout([c.width for c in cells], line_chars)
    return places[-1][0] + 1 if places else 1


def cells_figure(panels: list[tuple[str, list[Cell]]], title: str) -> Figure:
    """One axes per (label, cells), stacked, each as tall as its lines."""
    widest = max((sum(c.width for c in cells) for _, cells in panels), default=1)
    line_chars = min(LINE_CHARS, max(widest, 24))
    heights = [lines_needed(cells, line_chars) for _, cells in panels]
    fig = new_figure(CHAR[0] * line_chars + 0.6, CHAR[1] * sum(heights) + 0.45 * len(panels) + 1.0)
    axes = fig.subplots(len(panels), 1, squeeze=False, height_ratios=heights)[:, 0]
    for ax, (label, cells) in zip(axes, panels):
        draw_cells(ax, cells, line_chars, label)
    whole_title(fig, title)
    return fig


def mask_cells(tokens: list[str], states: list[int], valid: list[bool]) -> list[Cell]:
    """The valid tokens (padding left out), each boxed in its state's colour (none when visible)."""
    return [cell(text, STATE_COLOUR[state]) for text, state, keep in zip(tokens, states, valid) if keep]


def text_mask_figure(tokenizer: TextTokenizer, ids: torch.Tensor, plan: MaskPlan, title: str) -> Figure:
    """Per sample of ids (B, L): its tokens, those the decoder predicts boxed orange, those hidden
    and not predicted boxed grey; padding left out."""
    ids = ids.cpu()
    states = token_states(plan, ids.shape[1])
    panels = []
    for i, row in enumerate(ids):
        valid = (row != tokenizer.pad_id).tolist()
        padding = len(valid) - sum(valid)
        panels.append((f"sample {i} ({padding} padding tokens not shown)",
                       mask_cells(tokenizer.figure_tokens(row), states[i].tolist(), valid)))
    return cells_figure(panels, f"{title}\norange: predicted by the decoder, grey: hidden and not predicted")


def prediction_cells(tokens: list[str], guessed: list[str], right: list[bool | None], valid: list[bool]) -> list[Cell]:
    """The valid positions: the guessed token where right[n] is not None (boxed green if right,
    red if not), the true token elsewhere; padding left out."""
    cells = []
    for text, guess, correct, keep in zip(tokens, guessed, right, valid):
        if keep:
            cells.append(cell(text, None) if correct is None else cell(guess, RIGHT if correct else WRONG))
    return cells


def text_reconstruction_figure(tokenizer: TextTokenizer, ids: torch.Tensor, logits: torch.Tensor, plan: MaskPlan,
                               sample: int, title: str) -> Figure:
    """Sample `sample` of ids (B, L): the caption, what the encoder sees (hidden tokens as empty
    boxes, orange where predicted), and the decoder's most likely token (argmax of logits
    (B, Q, V)) at each predicted position, green where it is the true token, red where not."""
    row, predict = ids[sample].cpu(), plan.predict[sample].cpu()
    guess = row.clone()
    guess[predict] = logits[sample].detach().argmax(dim=-1).cpu()
    predicted = torch.zeros(len(row), dtype=torch.bool)
    predicted[predict] = True
    right = [bool(ok) if p else None for ok, p in zip((guess == row).tolist(), predicted.tolist())]
    valid = (row != tokenizer.pad_id).tolist()
    tokens = tokenizer.figure_tokens(row)
    states = token_states(MaskPlan(keep=plan.keep[sample:sample + 1], predict=predict[None]), len(row))[0].tolist()
    seen = [cell(text, None) if state == VISIBLE else cell("", STATE_COLOUR[state], max(1, len(text)))
            for text, state, keep in zip(tokens, states, valid) if keep]
    scored = [ok for ok, keep in zip(right, valid) if keep and ok is not None]
    panels = [("input", [cell(text, None) for text, keep in zip(tokens, valid) if keep]), ("encoder sees", seen),
              (f"prediction: {sum(scored)} of {len(scored)} predicted tokens right",
               prediction_cells(tokens, tokenizer.figure_tokens(guess), right, valid))]
    return cells_figure(panels, f"{title}\ngreen: predicted token right, red: wrong (the decoder's most likely token)")
