"""Optical flow between adjacent frames, for motion-guided masking.

Every estimator is a callable ``(batch, backward=None) -> flow (B, T-1, 2, H, W)`` float32: one
field per adjacent pair (t, t+1) of the clip, in pixels, channels (dx, dy) with x to the right and
y downwards. By default (``backward`` None) every field is BACKWARD: defined on frame t+1's pixel
grid, pointing to where that pixel's content is in frame t, i.e. frame_t(p + flow(p)) ~
frame_{t+1}(p) -- what a backward warp (grid_sample) of a map from frame t to frame t+1 needs.
``backward[t] = False`` asks for pair t's field in the other direction: on frame t's grid,
pointing to frame t+1 -- what a backward warp from frame t+1 to frame t needs. Asking per pair
lets a caller pay for exactly one estimate per pair.
"""

from collections.abc import Sequence
from pathlib import Path

import einops
import gin
import torch
import torch.nn.functional as F

RAFT_MIN_SIDE = 128  # torchvision's RAFT: the 1/8 feature maps must be >= 16 for its correlation pyramid


def pair_directions(backward: Sequence[bool] | None, pairs: int, device: torch.device) -> torch.Tensor:
    """(pairs,) bool: True where pair t's flow is backward (the default for every pair)."""
    if backward is None:
        return torch.ones(pairs, dtype=torch.bool, device=device)
    directions = torch.as_tensor(list(backward), dtype=torch.bool, device=device)
    if directions.shape != (pairs,):
        raise ValueError(f"backward names {directions.numel()} frame pairs, the clip has {pairs}")
    return directions


def video_of(batch: dict, owner: str) -> torch.Tensor:
    """batch['video'] (B, C, T, H, W) float, with an error naming `owner` when it is missing or misshapen."""
    if "video" not in batch:
        raise KeyError(f"{owner} estimates flow from batch['video']; the batch has keys {sorted(batch)}")
    video = batch["video"]
    if video.ndim != 5 or video.shape[2] < 2:
        raise ValueError(f"{owner} expects video (B, C, T >= 2, H, W), got {tuple(video.shape)}")
    return video.float()


def frame_pairs(video: torch.Tensor, backward: Sequence[bool] | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(source, target), each ((B (T-1)), C, H, W): the flow of each pair lives on `source`'s grid
    and points to `target` (backward pair t: source = frame t+1, target = frame t)."""
    directions = pair_directions(backward, video.shape[2] - 1, video.device)[None, None, :, None, None]
    first, second = video[:, :, :-1], video[:, :, 1:]
    source = torch.where(directions, second, first)
    target = torch.where(directions, first, second)
    return tuple(einops.rearrange(x, "b c t h w -> (b t) c h w") for x in (source, target))


def splat_backward(forward: torch.Tensor) -> torch.Tensor:
    """Forward flow (B, P, 2, H, W) on frame t's grid -> backward flow on frame t+1's grid.

    Every pixel with non-zero flow is splatted to its nearest landing pixel in frame t+1, which
    gets minus that displacement (collisions averaged); every other pixel of frame t+1 gets 0.
    Exact when the background is static (flow exactly 0) and moving pixels translate by whole
    pixels and occlude what they land on -- MovingDigits' rigid, integer-position digit.
    """
    batch, pairs, _, height, width = forward.shape
    ys, xs = torch.meshgrid(
        torch.arange(height, device=forward.device), torch.arange(width, device=forward.device), indexing="ij"
    )
    to_x = (xs + forward[:, :, 0]).round().long()
    to_y = (ys + forward[:, :, 1]).round().long()
    lands = (forward != 0).any(dim=2) & (to_x >= 0) & (to_x < width) & (to_y >= 0) & (to_y < height)
    dump = height * width  # one extra slot collects what does not land
    index = torch.where(lands, to_y * width + to_x, torch.full_like(to_x, dump))
    index = einops.repeat(index, "b p h w -> b p xy (h w)", xy=2)
    values = einops.rearrange(-forward, "b p xy h w -> b p xy (h w)")
    out = torch.zeros(batch, pairs, 2, dump + 1, dtype=forward.dtype, device=forward.device)
    out.scatter_reduce_(-1, index, values, reduce="mean", include_self=False)
    return einops.rearrange(out[..., :dump], "b p xy (h w) -> b p xy h w", h=height)


@gin.configurable(module="mmmae")
class GroundTruthFlow:
    """Flow from a dataset's side channel batch[key] (B, 2, T, H, W): FORWARD flow (dx, dy) from
    frame t to t+1 defined on frame t's pixels (MovingDigits: on the digit, 0 on the static
    background; the last frame's field is unused).

    Forward pairs are the channel itself. Backward pairs are made by :func:`splat_backward`,
    exact under its assumption (static background, whole-pixel moves): then the backward flow at
    a digit pixel of frame t+1 is minus the digit's displacement and 0 elsewhere.
    """

    def __init__(self, key: str = "flow"):
        self.key = key

    @torch.no_grad()
    def __call__(self, batch: dict, backward: Sequence[bool] | None = None) -> torch.Tensor:
        if self.key not in batch:
            raise KeyError(
                f"GroundTruthFlow(key={self.key!r}) needs batch[{self.key!r}] (forward flow (B, 2, T, H, W), set by "
                f"the dataset, e.g. MovingDigits); the batch has keys {sorted(batch)}. Without it, estimate the flow "
                "from the video: MotionGuidedMasking.flow = @FarnebackFlow() or @RAFTFlow()"
            )
        channel = batch[self.key]
        if channel.ndim != 5 or channel.shape[1] != 2 or channel.shape[2] < 2:
            raise ValueError(
                f"GroundTruthFlow expects batch[{self.key!r}] of shape (B, 2, T >= 2, H, W), got {tuple(channel.shape)}"
            )
        forward = einops.rearrange(channel[:, :, :-1].float(), "b xy t h w -> b t xy h w")
        directions = pair_directions(backward, forward.shape[1], forward.device)
        if not directions.any():
            return forward
        return torch.where(directions[None, :, None, None, None], splat_backward(forward), forward)


@gin.configurable(module="mmmae")
class FarnebackFlow:
    """OpenCV's dense Farneback flow on grayscale frames of batch['video'] (B, C, T, H, W) in [0, 1].

    Runs on the CPU, one pair at a time (cv2 is imported on first use); the arguments are
    cv2.calcOpticalFlowFarneback's, with OpenCV's sample values as defaults.
    """

    def __init__(
        self,
        pyr_scale: float = 0.5,
        levels: int = 3,
        winsize: int = 15,
        iterations: int = 3,
        poly_n: int = 5,
        poly_sigma: float = 1.2,
    ):
        self.params = (pyr_scale, levels, winsize, iterations, poly_n, poly_sigma, 0)

    @torch.no_grad()
    def __call__(self, batch: dict, backward: Sequence[bool] | None = None) -> torch.Tensor:
        import cv2

        video = video_of(batch, "FarnebackFlow")
        source, target = (to_gray_uint8(x) for x in frame_pairs(video, backward))
        fields = [cv2.calcOpticalFlowFarneback(s, t, None, *self.params) for s, t in zip(source, target)]
        flow = torch.from_numpy(einops.rearrange(fields, "n h w xy -> n xy h w")).to(video.device, torch.float32)
        return einops.rearrange(flow, "(b t) xy h w -> b t xy h w", b=video.shape[0])


def to_gray_uint8(frames: torch.Tensor):
    """(N, C, H, W) in [0, 1] -> numpy (N, H, W) uint8: ITU-R BT.601 luma for RGB, else the channel mean."""
    if frames.shape[1] == 3:
        gray = torch.einsum("nchw,c->nhw", frames, frames.new_tensor([0.299, 0.587, 0.114]))
    else:
        gray = frames.mean(dim=1)
    return (gray.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


@gin.configurable(module="mmmae")
class RAFTFlow:
    """torchvision's RAFT (raft_small, or raft_large with small=False) with weights from a LOCAL file.

    weights: a state dict saved by torch.save (e.g. torchvision's raft_small_C_T_V2-01064c6d.pth)
    or a .safetensors file; nothing is ever downloaded. Frames (B, C, T, H, W) in [0, 1], C = 1 or
    3, go in as [-1, 1]; RAFT needs sides that are multiples of 8 and at least 128, so other
    sizes are resized bilinearly to the nearest such size and the flow is resized back and
    rescaled to pixels of the input. `iters` refinement steps (MGMAE: 6); the network runs
    frozen in eval mode, moved to the video's device, in fp32.
    """

    def __init__(self, weights: str = gin.REQUIRED, small: bool = True, iters: int = 6):
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(
                f"RAFTFlow.weights = {str(weights)!r}: no such file. RAFTFlow never downloads; save a RAFT state dict "
                "(torchvision raft_small/raft_large) there and bind RAFTFlow.weights to its path"
            )
        from torchvision.models.optical_flow import raft_large, raft_small

        net = (raft_small if small else raft_large)(weights=None, progress=False)
        net.load_state_dict(load_state_dict(path))
        self.net = net.eval().requires_grad_(False)
        self.iters = iters

    @torch.no_grad()
    def __call__(self, batch: dict, backward: Sequence[bool] | None = None) -> torch.Tensor:
        video = video_of(batch, "RAFTFlow")
        channels = video.shape[1]
        if channels not in (1, 3):
            raise ValueError(f"RAFTFlow takes video with 1 or 3 channels, got {channels}")
        source, target = (einops.repeat(x, "n c h w -> n (r c) h w", r=3 // channels) * 2 - 1
                          for x in frame_pairs(video, backward))
        size = source.shape[-2:]
        work = tuple(max(RAFT_MIN_SIDE, -(-side // 8) * 8) for side in size)
        if work != size:
            source, target = (F.interpolate(x, work, mode="bilinear", align_corners=False) for x in (source, target))
        self.net.to(video.device)
        flow = self.net(source, target, num_flow_updates=self.iters)[-1].float()
        if work != size:
            scale = flow.new_tensor([size[1] / work[1], size[0] / work[0]])[None, :, None, None]
            flow = F.interpolate(flow, size=size, mode="bilinear", align_corners=False) * scale
        return einops.rearrange(flow, "(b t) xy h w -> b t xy h w", b=video.shape[0])


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors from a .safetensors file, or from a torch.save file without unpickling code (weights_only)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(path)
    return torch.load(path, map_location="cpu", weights_only=True)
