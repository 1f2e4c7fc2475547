"""LV-MAE's importance masking: keep the segments least similar to their predecessor (the change
points), mask the redundant ones."""

import gin
import torch
import torch.nn.functional as F

from mmmae.masking.base import check_ratio
from mmmae.masking.padded import keep_lowest_scores
from mmmae.masking.rng import MaskRNG
from mmmae.types import MaskPlan, Tokens


def predecessor_similarity(embeddings: torch.Tensor) -> torch.Tensor:
    """(B, L, D) -> c (B, L): c_i = cos(E_{i-1}, E_i), c_0 = 0."""
    similarity = F.cosine_similarity(embeddings[:, 1:].float(), embeddings[:, :-1].float(), dim=-1)
    return F.pad(similarity, (1, 0))


@gin.configurable(module="mmmae")
class ImportanceMasking:
    """Keep each sample's int(V * (1 - ratio)) valid segments of lowest c_i (ties: the earlier),
    predict its other valid ones; deterministic (no noise). c is computed on Tokens.target, the
    segment embeddings (B, L, D) of SegmentEmbeddingTokenizer. Padding: see keep_lowest_scores."""

    def __init__(self, ratio: float = 0.5):
        self.ratio = check_ratio("ImportanceMasking", ratio)

    def __call__(self, tokens: Tokens, batch: dict, rng: MaskRNG) -> MaskPlan:
        if tokens.target is None or tokens.target.ndim != 3 or tokens.target.shape[1] != tokens.num_tokens:
            raise ValueError("ImportanceMasking needs the segment embeddings (B, L, D) as Tokens.target "
                             "(SegmentEmbeddingTokenizer's, with no Modality.target)")
        score = predecessor_similarity(tokens.target)
        return keep_lowest_scores("ImportanceMasking", self.ratio, score, tokens.valid)
