"""Masking a padded sequence: each sample keeps its share of valid tokens by a score (lowest
first), padding is never kept for the encoder's sake nor a loss target; random scores here."""

import gin
import torch

from mmmae.masking.base import check_ratio
from mmmae.masking.rng import MaskRNG
from mmmae.types import MaskPlan, Tokens


def keep_lowest_scores(owner: str, ratio: float, score: torch.Tensor, valid: torch.Tensor | None) -> MaskPlan:
    """score (B, L), valid (B, L) bool or None (all) -> the plan that keeps each sample's
    k_b = int(V_b * (1 - ratio)) valid tokens of lowest score (at least 1, at most V_b - 1 when
    V_b >= 2; ties by position) and predicts its other valid ones (MAE's count over the V_b valid
    tokens of the sample).

    One K and Q for the batch (K = max k_b, Q = L - K): a sample with fewer kept tokens fills
    `keep` with its padding (which the encoder ignores through Tokens.valid) and `predict` with the
    rest of it at loss_weight 0. Its padding suffices: V_b - k_b never decreases with V_b, so
    V_b - k_b <= L - K. Deterministic given the scores.
    """
    size, length = score.shape
    device = score.device
    valid = torch.ones(size, length, dtype=torch.bool, device=device) if valid is None else valid
    num_valid = valid.sum(dim=1)
    if bool((num_valid == 0).any()):
        raise ValueError(f"{owner}: samples {(num_valid == 0).nonzero().flatten().tolist()} have no valid token")
    num_keep = (num_valid * (1 - ratio)).long().clamp(min=1).minimum((num_valid - 1).clamp(min=1))
    keep_count = int(num_keep.max())
    positions = torch.arange(length, device=device).expand(size, -1)
    order = torch.where(valid, score.float(), torch.inf).argsort(dim=1, stable=True)
    rank = torch.empty_like(order).scatter_(1, order, positions)
    chosen = valid & (rank < num_keep[:, None])
    group = torch.where(chosen, 0, torch.where(valid, 2, 1))  # kept, then padding, then predicted
    split = (group * length + positions).argsort(dim=1)
    keep = split[:, :keep_count].sort(dim=1).values
    predict = split[:, keep_count:].sort(dim=1).values
    return MaskPlan(keep=keep, predict=predict, loss_weight=valid.gather(1, predict).float())


@gin.configurable(module="mmmae")
class PaddedRandomMasking:
    """Random masking over each sample's valid tokens (`keep_lowest_scores` of uniform noise):
    MAE's random masking for padded sequences (LV-MAE's 'random')."""

    def __init__(self, ratio: float = 0.5):
        self.ratio = check_ratio("PaddedRandomMasking", ratio)

    def __call__(self, tokens: Tokens, batch: dict, rng: MaskRNG) -> MaskPlan:
        size, length = tokens.embed.shape[:2]
        noise = rng.rand(size, length).to(tokens.embed.device)
        return keep_lowest_scores("PaddedRandomMasking", self.ratio, noise, tokens.valid)
