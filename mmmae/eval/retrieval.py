"""Cross-modal retrieval: recall@k between two modalities' embeddings of the same samples."""

from collections.abc import Sequence

import gin
import torch
import torch.nn.functional as F
from accelerate.utils import send_to_device
from torch.utils.data import Dataset

from mmmae.eval.frozen import check_modality, frozen, present_rows
from mmmae.eval.interval import wilson_interval
from mmmae.eval.loader import EvalLoader
from mmmae.types import PairEmbedding, mean_tokens

QUERY_CHUNK = 1024  # queries scored at a time: the similarity matrix is never held whole


def recall_at_k(queries: torch.Tensor, keys: torch.Tensor, ks: Sequence[int]) -> dict[str, float]:
    """Recall@k of query i retrieving key i among all keys by dot product: (n, E), (n, E) -> {"R@k": fraction}.

    Ties are broken uniformly at random, in expectation: if g keys score strictly above the
    correct one and t others score exactly the same, its rank is uniform on g+1 .. g+t+1 and
    query i counts clamp(k - g, 0, t + 1) / (t + 1). So a collapsed embedding (all equal)
    scores exactly chance, k / n, never a perfect 1.
    """
    hits = torch.zeros(len(ks), dtype=torch.float64)
    for start in range(0, len(queries), QUERY_CHUNK):
        similarity = queries[start:start + QUERY_CHUNK] @ keys.T  # (chunk, n)
        rows = torch.arange(similarity.shape[0])
        correct = similarity[rows, start + rows].unsqueeze(1)
        higher = (similarity > correct).sum(dim=1)
        tied = (similarity == correct).sum(dim=1)  # the correct key itself included: t + 1
        for j, k in enumerate(ks):
            hits[j] += ((k - higher).clamp(min=0).minimum(tied) / tied).double().sum()
    return {f"R@{k}": float(hits[j] / len(queries)) for j, k in enumerate(ks)}


def pair_projection(model, a: str, b: str):
    """The model's objective that embeds this pair for contrast (a PairEmbedding of {a, b}, in either
    order), or None."""
    for objective in model.objectives:
        if isinstance(objective, PairEmbedding) and set(objective.modalities) == {a, b}:
            return objective
    return None


def embed(projection, modality: str, encoded: torch.Tensor, valid: torch.Tensor | None,
          pool=mean_tokens) -> torch.Tensor:
    """Encoder output (B, N, D) and validity (B, N) or None -> (B, E) float32 unit vectors: the
    projection's embedding, else `pool` (the encoder's: the mean over valid tokens, then its pool_norm)."""
    if projection is not None:
        return projection.embed(modality, encoded, valid).float()
    return F.normalize(pool(encoded, valid).float(), dim=-1)


@gin.configurable(module="mmmae")
class Retrieval:
    """Recall@k in both directions for each pair of modalities, over the readable samples of `data`
    that have both (unreadable ones are left out and counted, never replaced).

    Each modality is encoded alone and unmasked. The embedding of a pair is the projection of
    the model's contrastive objective for that pair (`Contrastive.embed`, either order) when it
    has one, else the encoder output mean-pooled over valid tokens; L2-normalised, so the score
    is the cosine similarity. Sample i of one modality is the correct answer for sample i of
    the other; ties count as in `recall_at_k`.

    Result, one entry per pair, keyed "a-b":
    {"a-b": {"modalities": [a, b], "a->b": {"R@1": .., "R@5": ..}, "b->a": {...},
             "a->b_ci": {"R@1": [low, high], ...} (Wilson 95 %), "b->a_ci": {...},
             "num_samples": n, "absent": samples lacking a or b, "left_out": unreadable samples (left out),
             "chance": {"R@1": 1/n, "R@5": 5/n},
             "embedding": the objective's name or "mean_pooled"}}
    """

    kind = "retrieval"

    def __init__(self, data: Dataset = gin.REQUIRED, pairs: Sequence[Sequence[str]] = gin.REQUIRED,
                 batch_size: int = 64, ks: Sequence[int] = (1, 5)):
        self.pairs = [tuple(pair) for pair in pairs]
        for pair in self.pairs:
            if len(pair) != 2 or pair[0] == pair[1]:
                raise ValueError(f"Retrieval.pairs: each pair must be two different modalities, got {list(pair)}")
        if not self.pairs:
            raise ValueError("Retrieval.pairs is empty")
        if not ks or any(k < 1 for k in ks):
            raise ValueError(f"Retrieval.ks must be positive integers, got {list(ks)}")
        self.data, self.batch_size, self.ks = data, batch_size, tuple(int(k) for k in ks)

    def __call__(self, model) -> dict:
        modalities = list(dict.fromkeys(m for pair in self.pairs for m in pair))
        for m in modalities:
            check_modality(model, m, "Retrieval")
        projections = {pair: pair_projection(model, *pair) for pair in self.pairs}
        embeddings = {(pair, m): [] for pair in self.pairs for m in pair}
        present = {m: [] for m in modalities}
        loader = EvalLoader(self.data, self.batch_size)
        with frozen(model) as device:
            for _, batch in loader:
                for m in modalities:
                    present[m].append(present_rows(batch, m))
                encoded = {m: model.encode({m: send_to_device(batch[m], device)}, m) for m in modalities}
                for pair, projection in projections.items():
                    for m in pair:
                        embeddings[pair, m].append(embed(projection, m, *encoded[m], pool=model.encoder.pool).cpu())
        present = {m: torch.cat(rows) if rows else torch.zeros(0, dtype=torch.bool) for m, rows in present.items()}
        return {f"{a}-{b}": self._score(a, b, present, embeddings, projections[a, b], loader.left_out)
                for a, b in self.pairs}

    def _score(self, a: str, b: str, present: dict, embeddings: dict, projection, left_out: int) -> dict:
        both = present[a] & present[b]
        n = int(both.sum())
        if n == 0:
            raise ValueError(f"Retrieval {a}-{b}: no sample of the data has both modalities ({len(both) - n} lack "
                             f"one, {left_out} left out as unreadable: the warnings above name their files and why)")
        za, zb = (torch.cat(embeddings[(a, b), m])[both] for m in (a, b))
        recalls = {f"{a}->{b}": recall_at_k(za, zb, self.ks), f"{b}->{a}": recall_at_k(zb, za, self.ks)}
        intervals = {f"{direction}_ci": {k: wilson_interval(value, n) for k, value in recall.items()}
                     for direction, recall in recalls.items()}
        return {"modalities": [a, b], **recalls, **intervals,
                "num_samples": n, "absent": len(both) - n, "left_out": left_out,
                "chance": {f"R@{k}": min(k / n, 1.0) for k in self.ks},
                "embedding": projection.name if projection else "mean_pooled"}
