"""Span masking for text: predict contiguous runs of valid tokens, padding only as a last resort."""

import gin
import torch

from mmmae.masking.base import check_ratio
from mmmae.masking.rng import MaskRNG
from mmmae.types import MaskPlan, Tokens


@gin.configurable(module="mmmae")
class SpanMasking:
    """Predict Q = max(1, round(ratio * L)) tokens per sample, laid out as contiguous spans.

    The valid tokens (tokens.valid) of a sample, in order, are cut into segments whose lengths are
    geometric with mean `mean_span`; segments are taken in random order until Q tokens are chosen
    (the last one cut short), so predicted spans are runs of valid tokens (adjacent segments merge).
    Padding is predicted only when a sample has fewer than Q valid tokens; it gets loss_weight 0.
    """

    def __init__(self, ratio: float = 0.25, mean_span: float = 3.0):
        self.ratio = check_ratio("SpanMasking", ratio)
        if mean_span < 1.0:
            raise ValueError(f"SpanMasking.mean_span = {mean_span}: a mean span length must be at least 1")
        self.mean_span = mean_span

    def __call__(self, tokens: Tokens, batch: dict, rng: MaskRNG) -> MaskPlan:
        size, length = tokens.embed.shape[:2]
        num_predict = max(1, round(self.ratio * length))
        if num_predict >= length:
            raise ValueError(
                f"SpanMasking.ratio = {self.ratio} predicts {num_predict} of {length} tokens: "
                "at least one must stay visible"
            )
        device = tokens.embed.device
        valid = tokens.valid if tokens.valid is not None else torch.ones(size, length, dtype=torch.bool, device=device)
        noise = rng.rand(size, 2, length).to(device)
        # Rank r of a sample: its valid tokens first (in order), then its padding.
        order = torch.sort((~valid).to(torch.uint8), dim=1, stable=True).indices
        ranks = torch.arange(length, device=device).expand(size, -1)
        num_valid = valid.sum(dim=1, keepdim=True)
        starts = (noise[:, 0] < 1.0 / self.mean_span) | (ranks == 0) | (ranks == num_valid)
        segment = starts.long().cumsum(dim=1) - 1
        # Valid ranks score their segment's noise in [0, 1); padding ranks come after, in order.
        score = torch.where(ranks < num_valid, noise[:, 1].gather(1, segment), 2.0 + ranks)
        chosen_ranks = torch.sort(score, dim=1, stable=True).indices[:, :num_predict]
        predicted = torch.zeros(size, length, dtype=torch.bool, device=device)
        predicted.scatter_(1, order.gather(1, chosen_ranks), True)
        split = torch.sort(predicted.to(torch.uint8), dim=1, stable=True).indices
        keep, predict = split[:, : length - num_predict], split[:, length - num_predict :]
        return MaskPlan(keep=keep, predict=predict, loss_weight=valid.gather(1, predict).float())
