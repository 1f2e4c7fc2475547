"""MovingDigits' video: the coloured digit moving over a static textured background, plus the
side channels every sample carries (digit_mask, flow, position)."""

from __future__ import annotations

import functools

import einops
import numpy as np
import torch

from mmmae.data.moving_digits.events import DigitEvent, load_digit_images
from mmmae.data.moving_digits.modality_renderers import ModalityRenderer, RenderSettings, Scene, register_renderer

_BACKGROUND_WAVES = 4
_BACKGROUND_MAX = 0.5


@functools.cache
def _digit_alphas(digit_size: int) -> np.ndarray:
    """All digits resized bilinearly to (1797, digit_size, digit_size), each normalised to max 1."""
    images = einops.rearrange(torch.tensor(load_digit_images()[0]), "n h w -> n 1 h w")
    scaled = torch.nn.functional.interpolate(images, size=(digit_size, digit_size), mode="bilinear",
                                             align_corners=False)
    scaled = scaled / scaled.amax(dim=(2, 3), keepdim=True)
    alphas = einops.rearrange(scaled.clamp(0, 1), "n 1 h w -> n h w").numpy()
    alphas.flags.writeable = False
    return alphas


def render_background(seed: int, channels: int, size: int) -> np.ndarray:
    """Static texture (C, H, W) float32 in [0, 0.5]: per channel a random mix of low-frequency sinusoids."""
    rng = np.random.default_rng(seed)
    frequencies = rng.uniform(-3.0, 3.0, size=(_BACKGROUND_WAVES, 2))  # cycles per frame along (x, y)
    phases = rng.uniform(0.0, 2 * np.pi, size=_BACKGROUND_WAVES)
    weights = rng.dirichlet(np.ones(_BACKGROUND_WAVES), size=channels)  # (C, K), rows sum to 1
    gains = rng.uniform(0.4, 1.0, size=channels)
    grid = np.arange(size) / size
    angle = (
        einops.rearrange(frequencies[:, 0], "k -> k 1 1") * grid[None, None, :]
        + einops.rearrange(frequencies[:, 1], "k -> k 1 1") * grid[None, :, None]
        + einops.rearrange(phases, "k -> k 1 1")
    )
    waves = 0.5 + 0.5 * np.sin(2 * np.pi * angle)  # (K, H, W) in [0, 1]
    background = np.einsum("ck,khw->chw", weights * gains[:, None] * _BACKGROUND_MAX, waves)
    return background.astype(np.float32)


def _rotated(alpha: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """alpha (d, d) turned counter-clockwise on screen by each angle (T,) in radians about its
    centre, bilinear, zero outside: (T, d, d) float32."""
    cos, sin = np.cos(angles), np.sin(angles)
    zeros = np.zeros_like(angles)
    # affine_grid maps output to input positions (x right, y down): the inverse of the screen rotation.
    theta = torch.tensor(np.stack([np.stack([cos, -sin, zeros], -1), np.stack([sin, cos, zeros], -1)], 1),
                         dtype=torch.float32)
    source = einops.repeat(torch.tensor(alpha, dtype=torch.float32), "h w -> t 1 h w", t=len(angles))
    grid = torch.nn.functional.affine_grid(theta, list(source.shape), align_corners=False)
    turned = torch.nn.functional.grid_sample(source, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return einops.rearrange(turned, "t 1 h w -> t h w").numpy()


def _sway_flow(positions: np.ndarray, angles: np.ndarray, frames: int, size: int, digit_size: int) -> np.ndarray:
    """Forward flow (2, T, H, W) of every pixel carried by the digit: its translation plus the turn
    by angles[t + 1] - angles[t] about the digit's centre (counter-clockwise on screen)."""
    centres = positions.astype(np.float64) + (digit_size - 1) / 2  # (T + 1, 2) pixel-centre (x, y)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    qx, qy = xs[None] - centres[:frames, 0, None, None], ys[None] - centres[:frames, 1, None, None]  # (T, H, W)
    turn = np.diff(angles)[:, None, None]
    cos, sin = np.cos(turn), np.sin(turn)
    shift = np.diff(centres, axis=0)  # (T, 2)
    dx = shift[:, 0, None, None] + cos * qx + sin * qy - qx
    dy = shift[:, 1, None, None] - sin * qx + cos * qy - qy
    return np.stack([dx, dy]).astype(np.float32)


def render_video(event: DigitEvent, *, frames: int, size: int, digit_size: int,
                 render_sway: bool = False) -> dict[str, np.ndarray]:
    """Render ``event`` as a clip; C = len(event.color), T = frames, H = W = size.

    render_sway: turn the digit by its sway angle in every frame (about its centre, counter-
    clockwise on screen for a positive angle), so the video shows what the IMU's gyroscopes
    measure; by default the digit's pixels never turn.

    Returns numpy arrays:
      video (C, T, H, W) float32 in [0, 1]: the coloured digit alpha-blended over the background;
      digit_mask (T, H, W) bool: pixels where the digit's alpha > 0.5;
      flow (2, T, H, W) float32: forward flow (dx, dy) from frame t to t+1 on digit_mask[t], 0
        elsewhere (the background is static). The last frame continues the surged path one
        frame further, i.e. it carries the displacement to where the digit would be at frame T;
      position (T, 2) float32: the rendered (integer) top-left (x, y) per frame.
    """
    positions = event.positions(frames + 1)  # one extra frame for the last frame's flow
    x, y = positions[:frames, 0], positions[:frames, 1]
    offsets = np.arange(digit_size)
    angles = event.motion(np.arange(frames + 1) / event.fps).angle
    digit = _digit_alphas(digit_size)[event.image_index]
    alpha = np.zeros((frames, size, size), np.float32)
    alpha[
        einops.rearrange(np.arange(frames), "t -> t 1 1"),
        einops.rearrange(y[:, None] + offsets, "t i -> t i 1"),
        einops.rearrange(x[:, None] + offsets, "t j -> t 1 j"),
    ] = _rotated(digit, angles[:frames]) if render_sway else digit
    background = einops.rearrange(render_background(event.background_seed, len(event.color), size), "c h w -> c 1 h w")
    color = einops.rearrange(np.asarray(event.color, np.float32), "c -> c 1 1 1")
    mask = alpha > 0.5
    if render_sway:
        displacement = _sway_flow(positions, angles, frames, size, digit_size)
    else:
        displacement = einops.rearrange(np.diff(positions, axis=0).astype(np.float32), "t xy -> xy t 1 1")
    return {
        "video": background * (1 - alpha) + color * alpha,
        "digit_mask": mask,
        "flow": np.where(mask, displacement, np.float32(0)),
        "position": positions[:frames].astype(np.float32),
    }


def _present(scene: Scene, settings: RenderSettings) -> dict[str, torch.Tensor]:
    """The clip the dataset rendered for the side channels."""
    return {"video": scene.video}


def _blank(settings: RenderSettings) -> dict[str, torch.Tensor]:
    """Zeros (C, T, H, W)."""
    return {"video": torch.zeros(settings.channels, settings.frames, settings.size, settings.size)}


register_renderer("video", ModalityRenderer(order=0, render=_present, blank=_blank))
