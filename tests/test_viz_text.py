"""Text figures: the caption's tokens written out, exactly the hidden ones highlighted."""

import torch
from matplotlib.colors import to_rgb

from mmmae.tokenizers.text import TextTokenizer
from mmmae.types import MaskPlan
from mmmae.viz_figure import HIDDEN_COLOUR, MASKED, PREDICTED, PREDICTED_COLOUR, VISIBLE
from mmmae.viz_text import (
    RIGHT,
    WRONG,
    boxes,
    cell,
    layout,
    mask_cells,
    prediction_cells,
    shown,
    text_mask_figure,
    text_reconstruction_figure,
)
from tests.test_viz_figure import drawn_outside


def test_layout_wraps_before_a_cell_that_would_pass_the_line():
    assert layout([1, 1, 1, 1, 1], 3) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]
    assert layout([2, 5, 1], 4) == [(0, 0), (1, 0), (2, 0)]  # a cell wider than a line gets a line of its own


def test_byt5_tokens_are_the_caption_characters_then_its_end():
    tokenizer = TextTokenizer(dim=8)
    assert tokenizer.figure_tokens(torch.tensor([100, 35, 101, 1, 0])) == ["a", " ", "b", "</s>", "<pad>"]


def test_mask_cells_highlight_exactly_the_hidden_tokens_and_leave_padding_out():
    tokens = ["a", " ", "b", "c", "<pad>"]
    cells = mask_cells(tokens, [VISIBLE, PREDICTED, MASKED, VISIBLE, PREDICTED], [True, True, True, True, False])
    assert [(c.text, c.colour) for c in cells] == [("a", None), (" ", PREDICTED_COLOUR), ("b", HIDDEN_COLOUR),
                                                   ("c", None)]


def test_adjacent_cells_of_one_colour_share_a_box():
    cells = [cell("a", "x"), cell("b", "x"), cell("c", None), cell("d", "x"), cell("e", "y")]
    assert boxes(cells, layout([1] * 5, 10)) == [(0, 0, 2, "x"), (0, 3, 1, "x"), (0, 4, 1, "y")]


def test_a_highlighted_space_and_an_unprintable_byte_are_drawn_visibly():
    assert (shown(" ", True), shown(" ", False), shown("\x07", False)) == ("\u2423", " ", "\ufffd")


def test_prediction_cells_mark_right_and_wrong_at_predicted_positions_only():
    cells = prediction_cells(["a", "b", "c", "<pad>"], ["a", "x", "z", "q"], [None, True, False, False],
                             [True, True, True, False])
    assert [(c.text, c.colour) for c in cells] == [("a", None), ("x", RIGHT), ("z", WRONG)]


def caption_ids() -> torch.Tensor:
    """'a one moves' as ByT5 ids, then EOS and padding: (1, 16)."""
    ids = [ord(c) + 3 for c in "a one moves"] + [1]
    return torch.tensor([ids + [0] * (16 - len(ids))])


def test_mask_figure_draws_one_box_per_hidden_run_and_no_padding():
    plan = MaskPlan(keep=torch.tensor([[0, 1, 5, 6, 7, 8, 9, 10, 11, 14, 15]]),
                    predict=torch.tensor([[2, 3, 4, 12, 13]]))
    fig = text_mask_figure(TextTokenizer(dim=8), caption_ids(), plan, "text")
    (ax,) = fig.axes
    assert len(ax.patches) == 1  # 'one' predicted; 12, 13 are padding
    assert [t.get_text() for t in ax.texts] == [*"a one moves", "</s>"]
    assert drawn_outside(fig) == []


def test_reconstruction_figure_scores_the_argmax_at_predicted_tokens():
    ids = caption_ids()
    plan = MaskPlan(keep=torch.tensor([[0, 1, 5, 6, 7, 8, 9, 10, 11, 14, 15]]),
                    predict=torch.tensor([[2, 3, 4, 12, 13]]))
    logits = torch.zeros(1, 5, 384)
    logits[0, 0, ids[0, 2]] = 1.0  # 'o' right; the rest guess id 0 (pad): wrong
    fig = text_reconstruction_figure(TextTokenizer(dim=8), ids, logits, plan, 0, "text, step 2")
    assert fig.axes[2].get_title(loc="left") == "prediction: 1 of 3 predicted tokens right"
    assert [p.get_facecolor()[:3] for p in fig.axes[2].patches] == [to_rgb(RIGHT), to_rgb(WRONG)]
    assert drawn_outside(fig) == []
