"""Motion-guided masking (MGMAE, Huang et al., ICCV 2023): the visible set follows the optical flow.

A visibility map is drawn on a base frame, carried to every other frame by warping it with the
optical flow, and each tubelet time slice keeps the patches that hold the most of it.
"""

from collections.abc import Callable, Sequence

import einops
import gin
import torch
import torch.nn.functional as F

from mmmae.masking.base import check_ratio, keep_after_masking, split_by_noise
from mmmae.masking.flow import GroundTruthFlow
from mmmae.masking.rng import MaskRNG
from mmmae.types import MaskPlan, Tokens

BASE_FRAMES = ("first", "middle", "last")


def gaussian_map(centres: torch.Tensor, grid: tuple[int, int], patch: int, sigma: float) -> torch.Tensor:
    """Max of 2-D Gaussians (std `sigma` pixels) at the centres of patches `centres` (B, K) of an
    (H', W') patch grid, scaled to max 1: (B, 1, H' patch, W' patch)."""
    rows, cols = grid
    centre_y = (torch.div(centres, cols, rounding_mode="floor") + 0.5) * patch  # pixel i spans [i, i + 1)
    centre_x = (centres % cols + 0.5) * patch
    ys = torch.arange(rows * patch, device=centres.device) + 0.5
    xs = torch.arange(cols * patch, device=centres.device) + 0.5
    gauss_y = torch.exp(-((ys - centre_y[..., None]) ** 2) / (2 * sigma**2))  # (B, K, H)
    gauss_x = torch.exp(-((xs - centre_x[..., None]) ** 2) / (2 * sigma**2))  # (B, K, W)
    image = einops.einsum(gauss_y, gauss_x, "b k h, b k w -> b k h w").amax(dim=1)
    image = image / image.amax(dim=(1, 2), keepdim=True)
    return einops.rearrange(image, "b h w -> b 1 h w")


def backward_warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """out(p) = image(p + flow(p)), bilinear, 0 outside: image (B, C, H, W), flow (B, 2, H, W) (dx, dy) pixels."""
    _, _, height, width = image.shape
    ys, xs = torch.meshgrid(
        torch.arange(height, device=image.device), torch.arange(width, device=image.device), indexing="ij"
    )
    # align_corners=False: pixel i's centre sits at (2 i + 1) / size - 1 in grid_sample's [-1, 1].
    grid_x = (2 * (xs + flow[:, 0]) + 1) / width - 1
    grid_y = (2 * (ys + flow[:, 1]) + 1) / height - 1
    grid = torch.stack([grid_x, grid_y], dim=-1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


@gin.configurable(module="mmmae")
class MotionGuidedMasking:
    """MGMAE: a Gaussian visibility map on a base frame, warped along the optical flow to every frame.

    Per sample: num_vis = H'W' - int(ratio H'W') random patch centres (VideoMAE's count) get a
    2-D Gaussian (std `sigma` pixels, default `patch`), combined by max and scaled to max 1, on
    the base frame (`base_frame`: first | middle = T // 2 | last). The map is backward-warped
    frame by frame away from the base (bilinear, zeros outside): frame t+1 after the base reads
    frame t at p + (flow on t+1's grid pointing to t); frame t before the base reads frame t+1 at
    p + (flow on t's grid pointing to t+1). (The official code warps the frames before the base
    with the flow of the wrong direction; this does not.) With `hole_filling`, pixels that warp
    to exactly 0 take the base map's value. Each tubelet time slice sums the map over every
    patch and keeps its num_vis largest (ties to the lower index).

    flow: an estimator from mmmae.masking.flow (default GroundTruthFlow()); tubelet and patch
    must equal the video tokenizer's. Randomness: one rng.rand(B, H'W') draw per call.
    """

    def __init__(
        self,
        ratio: float = 0.9,
        flow: Callable | None = None,
        base_frame: str = "middle",
        sigma: float | None = None,
        hole_filling: bool = True,
        tubelet: int = 2,
        patch: int = 16,
    ):
        self.ratio = check_ratio("MotionGuidedMasking", ratio)
        if base_frame not in BASE_FRAMES:
            raise ValueError(f"MotionGuidedMasking.base_frame = {base_frame!r}: must be one of {BASE_FRAMES}")
        if sigma is not None and not sigma > 0:
            raise ValueError(f"MotionGuidedMasking.sigma = {sigma}: must be > 0 (None: the patch size)")
        for name, size in (("tubelet", tubelet), ("patch", patch)):
            if size < 1:
                raise ValueError(f"MotionGuidedMasking.{name} = {size}: must be >= 1")
        self.flow = GroundTruthFlow() if flow is None else flow
        self.base_frame, self.hole_filling = base_frame, hole_filling
        self.tubelet, self.patch = tubelet, patch
        self.sigma = float(patch if sigma is None else sigma)

    def base_index(self, frames: int) -> int:
        return {"first": 0, "middle": frames // 2, "last": frames - 1}[self.base_frame]

    @torch.no_grad()
    def __call__(self, tokens: Tokens, batch: dict, rng: MaskRNG) -> MaskPlan:
        slices, rows, cols = tokens.grid
        space = rows * cols
        num_vis = keep_after_masking("MotionGuidedMasking", self.ratio, space, units="patches per time slice")
        batch_size = tokens.embed.shape[0]
        frames = slices * self.tubelet
        base = self.base_index(frames)
        flow = self.flow(batch, backward=[pair >= base for pair in range(frames - 1)])
        self._check_flow(flow, tokens.grid, batch_size)
        centres = split_by_noise(rng.rand(batch_size, space).to(flow.device), num_vis)[0]
        maps = self.warped_maps(gaussian_map(centres, (rows, cols), self.patch, self.sigma), flow.float(), base)
        score = einops.reduce(
            maps, "b (t p0) (h p1) (w p2) -> b t (h w)", "sum", p0=self.tubelet, p1=self.patch, p2=self.patch
        )
        order = score.argsort(dim=-1, descending=True, stable=True)
        offsets = (torch.arange(slices, device=score.device) * space)[None, :, None]
        keep = (order[..., :num_vis].sort(dim=-1).values + offsets).flatten(1)
        predict = (order[..., num_vis:].sort(dim=-1).values + offsets).flatten(1)
        return MaskPlan(keep=keep, predict=predict)

    def warped_maps(self, init: torch.Tensor, flow: torch.Tensor, base: int) -> torch.Tensor:
        """init (B, 1, H, W) on frame `base`, flow (B, T-1, 2, H, W) as asked for in __call__ -> (B, T, H, W)."""
        maps: list[torch.Tensor | None] = [None] * (flow.shape[1] + 1)
        maps[base] = init
        # After the base, pair t's flow f is backward (on frame t+1, pointing to t): the content at
        # p in frame t+1 was at p + f(p) in frame t, so m_{t+1}(p) = m_t(p + f(p)).
        for t in range(base, len(maps) - 1):
            maps[t + 1] = self._fill(backward_warp(maps[t], flow[:, t]), init)
        # Before the base, pair t's flow f is forward (on frame t, pointing to t+1): the content at
        # p in frame t goes to p + f(p) in frame t+1, so m_t(p) = m_{t+1}(p + f(p)).
        for t in reversed(range(base)):
            maps[t] = self._fill(backward_warp(maps[t + 1], flow[:, t]), init)
        return torch.cat(maps, dim=1)

    def _fill(self, warped: torch.Tensor, init: torch.Tensor) -> torch.Tensor:
        return torch.where(warped == 0, init, warped) if self.hole_filling else warped

    def _check_flow(self, flow: torch.Tensor, grid: Sequence[int], batch_size: int) -> None:
        slices, rows, cols = grid
        expected = (batch_size, slices * self.tubelet - 1, 2, rows * self.patch, cols * self.patch)
        if tuple(flow.shape) != expected:
            raise ValueError(
                f"MotionGuidedMasking.tubelet = {self.tubelet} and MotionGuidedMasking.patch = {self.patch} with "
                f"tokens.grid {tuple(grid)} expect flow {expected} (B, T-1, 2, H, W) for a "
                f"{slices * self.tubelet}-frame {rows * self.patch}x{cols * self.patch} clip, but the flow estimator "
                f"gave {tuple(flow.shape)}: bind them to the video tokenizer's tubelet and patch"
            )
