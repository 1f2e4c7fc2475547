"""Multi-view testing: evenly spaced clips and crops, and the average of the views' predictions."""

import pytest
import torch

from mmmae.eval.multi_view import average_views, clip_views, window_starts
from tests.float32_bound import rounding_bound


def test_windows_are_evenly_spaced_and_a_single_one_centred():
    assert window_starts(12, 8, 2) == [0, 4]
    assert window_starts(20, 16, 3) == [0, 2, 4]
    assert window_starts(20, 16, 1) == [2]
    assert window_starts(8, 8, 3) == [0, 0, 0]
    with pytest.raises(ValueError, match="a view of 9 does not fit in 8"):
        window_starts(8, 9, 1)


def coordinates(frames: int, height: int, width: int) -> torch.Tensor:
    """A batch of one clip (1, 1, T, H, W) whose value at (t, h, w) is t * 10000 + h * 100 + w."""
    t, h, w = torch.meshgrid(torch.arange(frames), torch.arange(height), torch.arange(width), indexing="ij")
    return (t * 10000 + h * 100 + w).float()[None, None]


def corners(views: list[torch.Tensor]) -> list[tuple[int, int, int]]:
    """(t, top, left) of each view, read off its first value."""
    return [(int(v[0, 0, 0, 0, 0]) // 10000, int(v[0, 0, 0, 0, 0]) % 10000 // 100, int(v[0, 0, 0, 0, 0]) % 100)
            for v in views]


def test_views_are_clips_then_crops_along_the_longer_side():
    views = clip_views(coordinates(12, 20, 20), (8, 16, 16), clips=2, crops=3)
    assert [tuple(v.shape) for v in views] == [(1, 1, 8, 16, 16)] * 6
    # square frames: crops along the width, centred vertically (top 2)
    assert corners(views) == [(0, 2, 0), (0, 2, 2), (0, 2, 4), (4, 2, 0), (4, 2, 2), (4, 2, 4)]
    assert torch.equal(views[4], coordinates(12, 20, 20)[:, :, 4:12, 2:18, 2:18])
    tall = clip_views(coordinates(8, 24, 16), (8, 16, 16), clips=1, crops=3)
    assert corners(tall) == [(0, 0, 0), (0, 4, 0), (0, 8, 0)]
    assert corners(clip_views(coordinates(12, 20, 20), (8, 16, 16), 1, 1)) == [(2, 2, 2)]


def test_a_view_larger_than_the_clips_is_refused():
    with pytest.raises(ValueError, match="a view of 8x16x16 .* does not fit in the test clips of 4x16x16"):
        clip_views(coordinates(4, 16, 16), (8, 16, 16), 1, 1)
    with pytest.raises(ValueError, match="needs clips"):
        clip_views(torch.zeros(2, 16, 4), (1, 1, 1), 1, 1)


def test_average_is_the_mean_of_the_single_view_logits_or_probabilities():
    torch.manual_seed(0)
    linear = torch.nn.Linear(8 * 4 * 4, 5)

    def classify(view: torch.Tensor) -> torch.Tensor:
        return linear(view.flatten(1))

    views = clip_views(torch.rand(3, 1, 12, 6, 8), (8, 4, 4), clips=2, crops=3)
    logits = [classify(v) for v in views]
    # each view classified alone or batched (the linear's 128 inputs), then a mean of 6 (softmax: 5 more terms)
    mean_logits, mean_probs = sum(logits) / 6, sum(view_logits.softmax(-1) for view_logits in logits) / 6
    logits_bound = rounding_bound(mean_logits, 2, 128)
    probs_bound = 2 * logits_bound + rounding_bound(torch.ones(1), 2, 6)  # softmax moves <= 2x its logits
    assert torch.allclose(average_views(classify, views, "logits"), mean_logits, atol=logits_bound, rtol=0)
    assert torch.allclose(average_views(classify, views, "softmax"), mean_probs, atol=probs_bound, rtol=0)
    with pytest.raises(ValueError, match="average = 'max'"):
        average_views(classify, views, "max")
