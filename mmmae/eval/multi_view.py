"""Multi-view testing (VideoMAE): several temporal clips x spatial crops of each test clip, predictions averaged."""

from collections.abc import Callable, Sequence

import torch

AVERAGES = ("softmax", "logits")


def window_starts(length: int, size: int, count: int) -> list[int]:
    """Offsets of `count` windows of `size` in `length`, evenly spaced from 0 to length - size;
    a single window is centred."""
    if size > length:
        raise ValueError(f"a view of {size} does not fit in {length}")
    if count == 1:
        return [(length - size) // 2]
    return [round(i * (length - size) / (count - 1)) for i in range(count)]


def clip_views(video: torch.Tensor, shape: Sequence[int], clips: int, crops: int) -> list[torch.Tensor]:
    """clips x crops views (B, C, T', H', W') of a batch of clips (B, C, T, H, W), shape = (T', H', W').

    Temporal windows are evenly spaced over T (clip-major order); spatial crops evenly spaced
    along the longer frame side (the width when square) and centred on the other, as VideoMAE's
    test crops. One clip and one crop: the centre view.
    """
    if video.ndim != 5:
        raise ValueError(f"multi-view testing needs clips (B, C, T, H, W), got shape {tuple(video.shape)}")
    frames, height, width = shape
    _, _, length, full_h, full_w = video.shape
    if frames > length or height > full_h or width > full_w:
        raise ValueError(f"a view of {frames}x{height}x{width} (T x H x W) does not fit in the test clips of "
                         f"{length}x{full_h}x{full_w}")
    along_width = full_w >= full_h
    lefts = window_starts(full_w, width, crops if along_width else 1)
    tops = window_starts(full_h, height, 1 if along_width else crops)
    boxes = [(top, left) for top in tops for left in lefts]
    return [video[:, :, t:t + frames, top:top + height, left:left + width]
            for t in window_starts(length, frames, clips) for top, left in boxes]


def average_views(classify: Callable[[torch.Tensor], torch.Tensor], views: Sequence[torch.Tensor],
                  average: str = "softmax") -> torch.Tensor:
    """Mean over views of classify(view) (B, C): of its softmax probabilities, or of its logits."""
    if average not in AVERAGES:
        raise ValueError(f"average = {average!r} is not one of {AVERAGES}")
    scores = [classify(view) for view in views]
    if average == "softmax":
        scores = [score.softmax(dim=-1) for score in scores]
    return torch.stack(scores).mean(dim=0)
