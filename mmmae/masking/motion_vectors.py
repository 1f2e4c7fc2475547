"""Motion-guided masking (MGM, Fan et al., ICCV 2023): mask where the codec's motion vectors are largest.

Rule, per sample and per tubelet time slice t of the (T', H', W') token grid:
  1. m_t: the motion magnitude map batch[key] (B, T, H, W) (codec motion vectors, see
     mmmae.data.media.motion_vectors) averaged over each tubelet x patch x patch token;
  2. s_t = m_t smoothed on the token grid by a `smooth` x `smooth` binomial (Gaussian-like)
     filter, zero outside the frame, so the masked region is a blob around the highest-motion
     location (its peak first, then its rings) rather than scattered tokens;
  3. M = int(ratio * H'W') tokens are masked (VideoMAE's count): the M - round(context * M)
     tokens of largest s_t (ties, e.g. a static background, broken at random), then
     round(context * M) more drawn uniformly from the rest (the paper's "random context": the
     visible set is not only the static background).
The mask therefore follows the moving region through time; positions between P-frames were
already interpolated in time by the data pipeline (I-frames, intra blocks).
"""

import math

import einops
import gin
import torch
import torch.nn.functional as F

from mmmae.masking.base import check_ratio, keep_after_masking, split_by_noise
from mmmae.masking.rng import MaskRNG
from mmmae.types import MaskPlan, Tokens

_NAME = "MotionVectorMasking"


@gin.configurable(module="mmmae")
class MotionVectorMasking:
    """Mask the int(ratio * H'W') highest-motion tokens of every time slice (module docstring).

    key: the batch's motion magnitude map (B, T, H, W) (set by WithMotionVectors).
    tubelet, patch: token size in frames and pixels; None infers them as T / T' and H / H'
      from the map and tokens.grid; given, they must match.
    smooth: odd binomial-filter width in tokens (1: no smoothing); context: share of the masked
      tokens drawn at random instead of by motion, in [0, 1).
    """

    def __init__(
        self,
        ratio: float = 0.75,
        key: str = "motion_vectors",
        tubelet: int | None = None,
        patch: int | None = None,
        smooth: int = 3,
        context: float = 0.0,
    ):
        self.ratio = check_ratio(_NAME, ratio)
        if smooth < 1 or smooth % 2 == 0:
            raise ValueError(f"{_NAME}.smooth = {smooth}: need an odd width >= 1")
        if not 0.0 <= context < 1.0:
            raise ValueError(f"{_NAME}.context = {context}: need 0 <= context < 1")
        self.key, self.tubelet, self.patch, self.smooth, self.context = key, tubelet, patch, smooth, context

    def __call__(self, tokens: Tokens, batch: dict, rng: MaskRNG) -> MaskPlan:
        frames, height, width = tokens.grid
        space = height * width
        num_keep = keep_after_masking(_NAME, self.ratio, space, units="tokens per time slice")
        num_masked = space - num_keep
        num_context = round(self.context * num_masked)
        batch_size = tokens.embed.shape[0]

        score = self._token_motion(tokens, batch)  # (B, T', H', W')
        score = einops.rearrange(score, "b t h w -> (b t) 1 h w")
        score = F.conv2d(score, self._kernel().to(score.device), padding=self.smooth // 2)
        score = einops.rearrange(score, "(b t) 1 h w -> b t (h w)", b=batch_size)

        device = score.device
        tie_break = rng.rand(batch_size, frames, space).to(device)
        by_noise = tie_break.argsort(dim=-1)  # a random order; the stable sort below keeps it among ties
        order = by_noise.gather(-1, score.gather(-1, by_noise).argsort(dim=-1, descending=True, stable=True))
        by_motion = torch.zeros_like(tie_break, dtype=torch.bool)
        by_motion.scatter_(-1, order[..., : num_masked - num_context], True)
        # the rest of the budget at random: motion-masked tokens get noise 2 so they are never kept
        noise = torch.where(by_motion, 2.0, rng.rand(batch_size, frames, space).to(device))
        keep, predict = split_by_noise(einops.rearrange(noise, "b t n -> (b t) n"), num_keep)
        offsets = einops.rearrange(torch.arange(frames, device=device) * space, "t -> 1 t 1")
        keep = einops.rearrange(einops.rearrange(keep, "(b t) k -> b t k", b=batch_size) + offsets, "b t k -> b (t k)")
        predict = einops.rearrange(predict, "(b t) q -> b t q", b=batch_size) + offsets
        return MaskPlan(keep=keep, predict=einops.rearrange(predict, "b t q -> b (t q)"))

    def _kernel(self) -> torch.Tensor:
        """(1, 1, smooth, smooth) normalised outer product of the binomial coefficients of order smooth - 1."""
        row = torch.tensor([math.comb(self.smooth - 1, i) for i in range(self.smooth)], dtype=torch.float32)
        return einops.rearrange(torch.outer(row, row) / row.sum() ** 2, "h w -> 1 1 h w")

    def _token_motion(self, tokens: Tokens, batch: dict) -> torch.Tensor:
        """batch[key] (B, T, H, W) -> mean magnitude per token (B, T', H', W') float32."""
        if self.key not in batch:
            raise KeyError(
                f"{_NAME} needs batch[{self.key!r}] (B, T, H, W) motion magnitudes (set by the dataset: "
                f"wrap it in WithMotionVectors, or bind {_NAME}.key); the batch has keys {sorted(batch)}"
            )
        magnitude = torch.as_tensor(batch[self.key]).to(tokens.embed.device, torch.float32)
        frames, height, width = tokens.grid
        if magnitude.ndim != 4 or magnitude.shape[0] != tokens.embed.shape[0]:
            raise ValueError(
                f"{_NAME}: batch[{self.key!r}] must be (B, T, H, W) with B = {tokens.embed.shape[0]}, "
                f"got {tuple(magnitude.shape)}"
            )
        sizes = {"tubelet": (magnitude.shape[1], frames), "patch": (magnitude.shape[2], height)}
        inferred = {}
        for binding, (pixels, cells) in sizes.items():
            given = getattr(self, binding)
            inferred[binding] = given if given is not None else pixels // cells
            if pixels != inferred[binding] * cells:
                raise ValueError(
                    f"{_NAME}.{binding} = {given}: batch[{self.key!r}] of shape {tuple(magnitude.shape)} does not "
                    f"split into the token grid {tokens.grid}"
                )
        if magnitude.shape[3] != inferred["patch"] * width:
            raise ValueError(
                f"{_NAME}: batch[{self.key!r}] of shape {tuple(magnitude.shape)} does not split into the token "
                f"grid {tokens.grid} with square patches of {inferred['patch']}"
            )
        return einops.reduce(
            magnitude, "b (t u) (h p) (w q) -> b t h w", "mean", u=inferred["tubelet"], p=inferred["patch"],
            q=inferred["patch"],
        )
