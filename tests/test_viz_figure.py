"""Figure plumbing: token states of a plan, whole titles, the saved size."""

import torch
from matplotlib.figure import Figure
from PIL import Image

from mmmae.types import MaskPlan
from mmmae.viz_figure import DPI, MASKED, PREDICTED, VISIBLE, new_figure, save_figure, token_states, whole_title


def drawn_outside(fig: Figure) -> list[str]:
    """The sides (left, bottom, right, top) past which something drawn on fig (a title, a label,
    a tick label, a legend) reaches beyond the figure; [] when all of it lies inside."""
    fig.canvas.draw()
    drawn = fig.get_tightbbox(fig.canvas.get_renderer())  # inches; only what is drawn (ticks in view)
    width, height = fig.get_size_inches()
    past = [drawn.x0 < 0, drawn.y0 < 0, drawn.x1 > width, drawn.y1 > height]
    return [side for side, out in zip(("left", "bottom", "right", "top"), past) if out]


def test_token_states_tell_visible_predicted_and_neither():
    plan = MaskPlan(keep=torch.tensor([[0, 3]]), predict=torch.tensor([[1, 3]]))
    assert token_states(plan, 5).tolist() == [[VISIBLE, PREDICTED, MASKED, VISIBLE, MASKED]]


TITLE = "video: RunningCellMasking(TubeMasking), per sample 16 of 64 tokens seen by the encoder, 48 predicted"


def test_a_long_title_left_unwrapped_is_found_cut():
    fig = new_figure(3.0, 2.0)
    fig.subplots().plot([0, 1])
    fig.suptitle(TITLE, fontsize=11)
    assert drawn_outside(fig) == ["left", "right"]


def test_a_long_title_is_wrapped_whole_inside_a_narrow_figure():
    title = TITLE
    fig = new_figure(3.0, 2.0)
    fig.subplots().plot([0, 1])
    whole_title(fig, f"{title}\nsecond line")
    shown = fig._suptitle.get_text()
    assert shown.count("\n") > 1  # wrapped
    assert shown.split() == f"{title} second line".split()  # every word kept, in order
    assert drawn_outside(fig) == []


def test_save_figure_writes_the_figure_at_its_size(tmp_path):
    fig = new_figure(4.0, 1.5)
    path = save_figure(fig, tmp_path / "sub" / "f.png")
    assert Image.open(path).size == (4 * DPI, round(1.5 * DPI))
