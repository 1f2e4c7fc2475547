"""Span masking for text: predict a share of each sample's valid tokens as contiguous runs."""

import gin
import torch

from mmmae.masking.base import check_ratio
from mmmae.masking.rng import MaskRNG
from mmmae.types import MaskPlan, Tokens


@gin.configurable(module="mmmae")
class SpanMasking:
    """Predict round(ratio * V) of a sample's V valid tokens, laid out as contiguous spans (at
    least one predicted and one visible when V >= 2; none of V <= 1).

    The valid tokens (tokens.valid) of a sample, in order, are cut into segments whose lengths are
    geometric with mean `mean_span`; segments are taken in random order until its share is chosen
    (the last one cut short), so predicted spans are runs of valid tokens (adjacent segments merge).
    Every sample's plan predicts Q = max(1, round(ratio * L)) of the L positions (one shape for
    the batch, and for any shard of it): a shorter caption fills the rest with its padding, in
    order, at loss_weight 0.
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
        preferred = torch.sort(score, dim=1, stable=True).indices  # ranks: spans of valid tokens, then padding
        share = torch.round(self.ratio * num_valid).clamp(min=1).minimum(num_valid - 1).clamp(min=0)
        # The sample's share of valid ranks first, then its padding, then its other valid ranks.
        priority = torch.where(ranks < share, ranks, torch.where(ranks >= num_valid, share + ranks - num_valid,
                                                                 length + ranks))
        chosen_ranks = preferred.gather(1, torch.sort(priority, dim=1, stable=True).indices[:, :num_predict])
        predicted = torch.zeros(size, length, dtype=torch.bool, device=device)
        predicted.scatter_(1, order.gather(1, chosen_ranks), True)
        split = torch.sort(predicted.to(torch.uint8), dim=1, stable=True).indices
        keep, predict = split[:, : length - num_predict], split[:, length - num_predict :]
        return MaskPlan(keep=keep, predict=predict, loss_weight=valid.gather(1, predict).float())
