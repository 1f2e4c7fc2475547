"""MARLIN's region-guided masking, "fasking" (Cai et al., CVPR 2023): regions late in a priority
queue are masked first.

A region map batch[key] (B, T, H, W) labels every pixel (MARLIN: face parsing, 0 background,
1 skin, then eyes, nose, mouth, hair; MovingDigits: digit_mask, 0 background, 1 digit). Per
tubelet time slice, read on its first frame, labels join the visible candidates in queue order
and the queue stops at the first label that brings the candidates to num_vis patches; num_vis
of the candidates are then drawn uniformly. Labels never reached stay masked.
"""

from collections.abc import Sequence

import gin
import torch
from einops import rearrange

from mmmae.masking.base import check_ratio, keep_after_masking, split_by_noise
from mmmae.masking.rng import MaskRNG
from mmmae.types import MaskPlan, Tokens

ORDERS = ("random", "fixed", "reversed")
SHOWABLE = ("any", "all")


@gin.configurable(module="mmmae")
class RegionGuidedMasking:
    """Keep num_vis = H'W' - int(ratio * H'W') patches in each of the T' slices of a (T', H', W') grid.

    key: the batch entry of the region map (B, T, H, W), integer labels in [0, num_labels) or
      bool (labels {0, 1}); T = T' * tubelet, H = H' * patch, W = W' * patch.
    show_first: labels queued first, in this order (MARLIN: background, skin).
    order: how the other labels follow. 'random': a fresh permutation per sample (MARLIN
      'fasking'); 'fixed': ascending labels; 'reversed': the 'random' queue reversed, i.e. the
      other labels first and show_first last (MARLIN 'fasking_opp'), so the regions are shown.
    showable: when a patch that touches several labels becomes a candidate. 'any': once any of
      its labels is queued (MARLIN: the max-pool of label == c over the patch); 'all': once all
      of them are, so a region is masked before any patch touching it is shown, also where
      it is thin and every patch of it touches the background too (MovingDigits' strokes).
    """

    def __init__(self, ratio: float = 0.9, key: str = "digit_mask", show_first: Sequence[int] = (0,),
                 order: str = "random", tubelet: int = 2, patch: int = 16, num_labels: int = 2,
                 showable: str = "any"):
        self.ratio = check_ratio("RegionGuidedMasking", ratio)
        if order not in ORDERS:
            raise ValueError(f"RegionGuidedMasking.order = {order!r}: choose one of {ORDERS}")
        if showable not in SHOWABLE:
            raise ValueError(f"RegionGuidedMasking.showable = {showable!r}: choose one of {SHOWABLE}")
        self.show_first = tuple(show_first)
        if len(set(self.show_first)) < len(self.show_first) or not all(0 <= c < num_labels for c in self.show_first):
            raise ValueError(f"RegionGuidedMasking.show_first = {show_first}: need distinct labels in "
                             f"[0, num_labels = {num_labels})")
        self.key, self.order, self.showable = key, order, showable
        self.tubelet, self.patch, self.num_labels = tubelet, patch, num_labels

    def region_slices(self, batch: dict, grid: tuple[int, int, int]) -> torch.Tensor:
        """batch[key] (B, T, H, W) -> labels (B, T', H, W) int64 of each slice's first frame, checked."""
        if self.key not in batch:
            raise KeyError(f"RegionGuidedMasking needs batch[{self.key!r}] (RegionGuidedMasking.key, set by the "
                           f"dataset); the batch has keys {sorted(batch)}")
        region = batch[self.key]
        frames, height, width = grid
        expected = (frames * self.tubelet, height * self.patch, width * self.patch)
        if region.ndim != 4 or tuple(region.shape[1:]) != expected:
            raise ValueError(
                f"RegionGuidedMasking: batch[{self.key!r}] has shape {tuple(region.shape)}, but the token grid "
                f"{grid} with RegionGuidedMasking.tubelet = {self.tubelet} and RegionGuidedMasking.patch = "
                f"{self.patch} needs (B, {', '.join(map(str, expected))}); set them to the tokenizer's tubelet "
                "and patch"
            )
        if region.is_floating_point() or region.is_complex():
            raise ValueError(f"RegionGuidedMasking: batch[{self.key!r}] must hold integer or bool labels, "
                             f"got {region.dtype}")
        labels = region[:, :: self.tubelet].long()
        if bool(((labels < 0) | (labels >= self.num_labels)).any()):
            raise ValueError(f"RegionGuidedMasking: batch[{self.key!r}] has labels outside "
                             f"[0, RegionGuidedMasking.num_labels = {self.num_labels})")
        return labels

    def queue_keys(self, batch_size: int, rng: MaskRNG, device: torch.device) -> torch.Tensor:
        """(B, num_labels) float: a label's place in the queue (lower joins earlier)."""
        if self.order == "fixed":
            rest = torch.arange(self.num_labels, device=device).expand(batch_size, -1) / self.num_labels
        else:
            rest = rng.rand(batch_size, self.num_labels).to(device)
        keys = len(self.show_first) + rest
        for place, label in enumerate(self.show_first):
            keys[:, label] = place
        return -keys if self.order == "reversed" else keys

    def touched(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, T', H, W) bool -> (B, T', H'W') bool: patches with any True pixel (a max-pool over each patch)."""
        return rearrange(pixels, "b t (h p) (w q) -> b t (h w) (p q)", p=self.patch, q=self.patch).any(-1)

    def __call__(self, tokens: Tokens, batch: dict, rng: MaskRNG) -> MaskPlan:
        grid = tokens.grid
        labels = self.region_slices(batch, grid)
        batch_size, space = labels.shape[0], grid[1] * grid[2]
        num_vis = keep_after_masking("RegionGuidedMasking", self.ratio, space, units="patches per slice")
        keys = self.queue_keys(batch_size, rng, labels.device)
        touched = torch.stack([self.touched(labels == label) for label in range(self.num_labels)], dim=-1)
        keys = keys[:, None, None, :]  # (B, 1, 1, num_labels) against touched (B, T', H'W', num_labels)
        if self.showable == "any":
            joins = torch.where(touched, keys, torch.inf).amin(dim=-1)  # (B, T', H'W'): when a patch is showable
        else:
            joins = torch.where(touched, keys, -torch.inf).amax(dim=-1)
        last = joins.kthvalue(num_vis, dim=-1, keepdim=True).values
        candidate = (joins <= last).float()
        noise = rng.rand(batch_size, grid[0], space).to(labels.device)
        keep, predict = split_by_noise(rearrange(-(candidate + noise), "b t s -> (b t) s"), num_vis)
        offsets = torch.arange(grid[0], device=labels.device)[:, None] * space
        keep = rearrange(rearrange(keep, "(b t) k -> b t k", b=batch_size) + offsets, "b t k -> b (t k)")
        predict = rearrange(rearrange(predict, "(b t) k -> b t k", b=batch_size) + offsets, "b t k -> b (t k)")
        device = tokens.embed.device
        return MaskPlan(keep=keep.to(device), predict=predict.to(device))
