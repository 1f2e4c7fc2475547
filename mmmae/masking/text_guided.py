"""Text-guided masking (TGM; Fan et al., "Text-Guided Video Masked Autoencoder", ECCV 2024).

In every time slice of the (T', H', W') video grid, the int(ratio * H'W') patches that agree
most with the clip's caption are masked; the rest stay visible. The paper scores a patch by
the cosine between frozen CLIP patch features and the CLIP text embedding of a BLIP-2
caption; here a scorer is pluggable:
  CachedCaptionScores: precomputed scores from a batch side channel (e.g. CLIP, offline);
  PatchCaptionScorer:  the model's own video projection head (shared with
                       objectives.caption_contrastive.CaptionContrastive) applied to each token,
                       against a frozen sentence embedding of batch["caption"].
"""

from collections.abc import Callable

import einops
import gin
import torch
import torch.nn.functional as F
from torch import nn

from mmmae.masking.base import check_ratio, keep_after_masking
from mmmae.masking.rng import MaskRNG
from mmmae.nn.sentence_encoder import FrozenSentenceEncoder, batch_captions
from mmmae.types import MaskPlan, Tokens


def top_scores_per_slice(scores: torch.Tensor, noise: torch.Tensor, num_top: int) -> tuple[torch.Tensor, torch.Tensor]:
    """scores, noise (..., S) -> (top (..., num_top), rest (..., S - num_top)) positions, both sorted.

    `top` holds the num_top highest scores; equal scores are ordered by the noise (lower
    noise first), so ties are broken uniformly at random.
    """
    by_noise = noise.argsort(dim=-1)
    ranked = scores.gather(-1, by_noise).argsort(dim=-1, descending=True, stable=True)
    order = by_noise.gather(-1, ranked)
    return order[..., :num_top].sort(dim=-1).values, order[..., num_top:].sort(dim=-1).values


@gin.configurable(module="mmmae")
class TextGuidedMasking(nn.Module):
    """Mask the int(ratio * H'W') top-scoring tokens of each of the T' time slices; keep the rest.

    scorer: (tokens, batch) -> (B, N) patch-caption scores, N = T'H'W' in token order
    (CachedCaptionScores or PatchCaptionScorer). TGM's best ratio is 0.6 (0.75 was worse;
    top-k beat bottom-k and random). Ties, e.g. a sample without a caption (all scores 0),
    are broken by the rng's noise. aux["caption_scores"]: the scores (B, N) float32.
    """

    def __init__(self, ratio: float = 0.6, scorer: Callable = gin.REQUIRED):
        super().__init__()
        self.ratio = check_ratio("TextGuidedMasking", ratio)
        self.scorer = scorer

    def forward(self, tokens: Tokens, batch: dict, rng: MaskRNG) -> MaskPlan:
        if len(tokens.grid) != 3:
            raise ValueError(f"TextGuidedMasking needs a (T', H', W') video grid, got {tokens.grid}")
        frames, height, width = tokens.grid
        space = height * width
        num_keep = keep_after_masking("TextGuidedMasking", self.ratio, space, units="tokens of a time slice")
        scores = self.scorer(tokens, batch).detach().float()  # (B, N)
        noise = rng.rand(tokens.embed.shape[0], frames, space).to(scores.device)
        per_slice = einops.rearrange(scores, "b (t s) -> b t s", t=frames)
        predict, keep = top_scores_per_slice(per_slice, noise, space - num_keep)  # (B, T', k) slice positions
        start = (torch.arange(frames, device=scores.device) * space)[None, :, None]
        return MaskPlan(keep=(keep + start).flatten(1), predict=(predict + start).flatten(1),
                        aux={"caption_scores": scores})


@gin.configurable(module="mmmae")
class CachedCaptionScores:
    """Precomputed patch-caption scores: batch[key], (B, T', H', W') or (B, N), one per token."""

    def __init__(self, key: str = "caption_sim"):
        self.key = key

    def __call__(self, tokens: Tokens, batch: dict) -> torch.Tensor:
        owner = f"TextGuidedMasking (scorer CachedCaptionScores.key = {self.key!r})"
        if self.key not in batch:
            raise KeyError(f"{owner} needs batch[{self.key!r}], patch-caption scores per token (set by the dataset); "
                           f"the batch has keys {sorted(batch)}")
        scores = batch[self.key]
        batch_size = tokens.embed.shape[0]
        if tuple(scores.shape) not in ((batch_size, *tokens.grid), (batch_size, tokens.num_tokens)):
            raise ValueError(f"{owner}: batch[{self.key!r}] has shape {tuple(scores.shape)}, expected "
                             f"{(batch_size, *tokens.grid)} or {(batch_size, tokens.num_tokens)} (the token grid)")
        return scores.to(tokens.embed.device).float().flatten(1)


@gin.configurable(module="mmmae")
class PatchCaptionScorer(nn.Module):
    """Scores (B, N) = cos(projection(tokens.embed), text_encoder(batch[caption_key])), no gradient.

    projection: (..., D) -> (..., E), the video projection head that CaptionContrastive trains
    (bind both to one gin singleton, see gin/recipes/tgm.gin), so that a patch is scored in the
    space where the pooled video is contrasted with its caption. text_encoder: captions ->
    (B, E) unit vectors, frozen (None: FrozenSentenceEncoder(), all-MiniLM-L6-v2, E = 384).
    A sample with an empty caption (text missing) scores 0 everywhere: random masking.
    """

    def __init__(self, projection: nn.Module = gin.REQUIRED, text_encoder: Callable | None = None,
                 caption_key: str = "caption"):
        super().__init__()
        self.projection = projection
        self.text_encoder = FrozenSentenceEncoder() if text_encoder is None else text_encoder
        self.caption_key = caption_key

    @torch.no_grad()
    def forward(self, tokens: Tokens, batch: dict) -> torch.Tensor:
        owner = f"TextGuidedMasking (scorer PatchCaptionScorer.caption_key = {self.caption_key!r})"
        captions = batch_captions(owner, batch, self.caption_key, tokens.embed.shape[0])
        patches = self.projection(tokens.embed.detach()).float()  # (B, N, E)
        text = self.text_encoder(captions).to(patches.device).float()  # (B, E)
        if patches.shape[-1] != text.shape[-1]:
            raise ValueError(f"PatchCaptionScorer: the projection gives {patches.shape[-1]}-d patch embeddings but "
                             f"the text encoder {text.shape[-1]}-d ones (bind the head's out_dim to {text.shape[-1]})")
        scores = F.cosine_similarity(patches, text[:, None, :], dim=-1)  # (B, N)
        has_caption = torch.tensor([bool(c.strip()) for c in captions], device=scores.device)
        return scores * has_caption[:, None]
