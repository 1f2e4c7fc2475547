"""Motion vectors read from a compressed video stream at decode time (MGM, Fan et al., ICCV 2023).

A codec's motion vectors say, per block, where in a reference frame the block comes from. The
decoder exports them (FFmpeg ``flags2=+export_mvs``, PyAV's ``MOTION_VECTORS`` frame side
data) at no extra cost to decoding: no optical flow is computed. :func:`decode_with_motion_vectors`
rasterises their magnitude |motion| (pixels) onto a grid of ``CELL`` x ``CELL`` pixel cells, the
smallest H.264 partition; every block size used by H.264, MPEG-4 part 2 and MPEG-1/2 is a whole
number of cells.

Gaps: I-frames carry no vectors, and neither do intra-coded blocks inside P/B-frames. Such cells
are filled per cell by linear interpolation in time between the nearest earlier and later frames
whose vectors cover it (the nearest one at the ends of the clip; 0 where no frame covers it).

:class:`WithMotionVectors` is the same path for synthetic clips: it encodes each sample's video
with PyAV, decodes it back with the vectors, and adds the magnitude map at the clip's pixels.
PyAV is imported inside the functions that use it.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

import einops
import gin
import numpy as np
import torch

CELL = 4  # pixels per side of one cell of the magnitude grid: the smallest H.264 partition (4x4)
DEFAULT_CODEC = "libx264"  # H.264, as in MGM; PyAV's PyPI wheels ship libx264, and FFmpeg's own "mpeg4" works too
_CONTAINER = "matroska"
_MB = 16  # macroblock size: clips are padded to a multiple of it before encoding


def encode_video(
    frames: np.ndarray,
    path: str | os.PathLike | BinaryIO,
    codec: str = DEFAULT_CODEC,
    fps: int = 8,
    gop: int = 16,
) -> None:
    """Encode frames (T, H, W, 3) uint8 RGB (H, W even) into a Matroska file or binary file object.

    I-frame every ``gop`` frames, P-frames in between (no B-frames), high quality so the encoder's
    motion search sees the true content: libx264 with crf 12 and preset "fast" (default
    partitions, sub-pixel motion), or mpeg4 at quantiser 2 with 8x8 vectors (+mv4). One thread.
    """
    import av  # heavy optional import, only where used

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"encode_video expects frames (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    _, height, width, _ = frames.shape
    if height % 2 or width % 2:
        raise ValueError(f"encode_video needs an even frame size for yuv420p, got {height}x{width}")
    options = {"g": str(gop), "bf": "0", "threads": "1"}
    if codec == "libx264":
        options.update(crf="12", preset="fast", tune="zerolatency")
    elif codec == "mpeg4":
        options.update(flags="+qscale+mv4", global_quality=str(2 * 118))  # -q:v 2 (FF_QP2LAMBDA = 118)
    with av.open(path, "w", format=_CONTAINER) as container:
        stream = container.add_stream(codec, rate=fps, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())


def decode_with_motion_vectors(path_or_file: str | os.PathLike | BinaryIO) -> tuple[np.ndarray, np.ndarray]:
    """Decode the first video stream with the codec's motion vectors exported.

    Returns frames (T, H, W, 3) uint8 RGB in display order and mv_magnitude (T, ceil(H/4),
    ceil(W/4)) float32: per 4x4 pixel cell the largest |motion| in pixels (motion / motion_scale)
    of the vectors whose block covers the cell (both directions of a B-block; a vector from a
    frame further away than the previous one is not rescaled). Cells without a vector (I-frames,
    intra blocks) are interpolated in time, see the module docstring.
    """
    images, magnitude = _decode(path_or_file, keep_frames=True)
    return np.stack(images), magnitude


def decode_motion_vectors(path_or_file: str | os.PathLike | BinaryIO) -> np.ndarray:
    """Only the mv_magnitude of :func:`decode_with_motion_vectors`, without converting frames to RGB."""
    return _decode(path_or_file, keep_frames=False)[1]


def _decode(path_or_file: str | os.PathLike | BinaryIO, keep_frames: bool) -> tuple[list[np.ndarray], np.ndarray]:
    import av  # heavy optional import, only where used

    images, magnitudes, covered = [], [], []
    with av.open(path_or_file) as container:
        stream = container.streams.video[0]
        stream.codec_context.options = {"flags2": "+export_mvs"}
        for frame in container.decode(stream):
            if keep_frames:
                images.append(frame.to_ndarray(format="rgb24"))
            cells = (-(-frame.height // CELL), -(-frame.width // CELL))
            vectors = frame.side_data.get("MOTION_VECTORS")
            magnitude, cover = _rasterise(vectors.to_ndarray() if vectors is not None else None, cells)
            magnitudes.append(magnitude)
            covered.append(cover)
    if not magnitudes:
        raise ValueError(f"no video frames decoded from {path_or_file!r}")
    return images, fill_in_time(np.stack(magnitudes), np.stack(covered))


def _rasterise(vectors: np.ndarray | None, cells: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Structured AVMotionVector array -> (magnitude (h, w) float32, covered (h, w) bool) on the cell grid."""
    magnitude = np.zeros(cells, np.float32)
    covered = np.zeros(cells, bool)
    if vectors is None or len(vectors) == 0:
        return magnitude, covered
    scale = np.maximum(vectors["motion_scale"], 1).astype(np.float32)
    length = np.hypot(vectors["motion_x"] / scale, vectors["motion_y"] / scale).astype(np.float32)
    width, height = vectors["w"].astype(int), vectors["h"].astype(int)
    left = (vectors["dst_x"].astype(int) - width // 2) // CELL  # dst is the block's centre
    top = (vectors["dst_y"].astype(int) - height // 2) // CELL
    for block_w, block_h in set(zip(width.tolist(), height.tolist())):
        same = (width == block_w) & (height == block_h)
        rows = top[same, None, None] + np.arange(max(block_h // CELL, 1))[None, :, None]
        cols = left[same, None, None] + np.arange(max(block_w // CELL, 1))[None, None, :]
        rows, cols = np.broadcast_arrays(rows, cols)
        values = np.broadcast_to(length[same, None, None], rows.shape)
        inside = (rows >= 0) & (rows < cells[0]) & (cols >= 0) & (cols < cells[1])
        np.maximum.at(magnitude, (rows[inside], cols[inside]), values[inside])
        covered[rows[inside], cols[inside]] = True
    return magnitude, covered


def fill_in_time(values: np.ndarray, known: np.ndarray) -> np.ndarray:
    """values, known (T, ...) -> values where known, elsewhere linearly interpolated in time per
    position between the nearest known frames (nearest one past either end; 0 if none known)."""
    frames = values.shape[0]
    time = einops.rearrange(np.arange(frames), "t -> t" + " 1" * (values.ndim - 1))
    before = np.maximum.accumulate(np.where(known, time, -1), axis=0)
    after = np.flip(np.minimum.accumulate(np.flip(np.where(known, time, frames), 0), axis=0), 0)
    has_before, has_after = before >= 0, after < frames
    value_before = np.take_along_axis(values, np.clip(before, 0, frames - 1), axis=0)
    value_after = np.take_along_axis(values, np.clip(after, 0, frames - 1), axis=0)
    weight = np.where(has_before & has_after, (time - before) / np.maximum(after - before, 1), 0.0)
    blended = value_before + weight * (value_after - value_before)
    filled = np.where(has_before, np.where(has_after, blended, value_before), np.where(has_after, value_after, 0.0))
    return np.where(known, values, filled).astype(np.float32)


def clip_motion_vectors(
    video: torch.Tensor, upscale: int = 4, codec: str = DEFAULT_CODEC, fps: int = 8, gop: int = 16
) -> np.ndarray:
    """video (C, T, H, W) float in [0, 1], C in {1, 3} -> motion magnitude (T, H, W) float32 in
    pixels of the clip per frame: the clip is upscaled by nearest neighbour (so codec blocks are
    smaller than its objects), padded to whole macroblocks, encoded in memory, decoded with its
    motion vectors, and the 4x4-cell map is cropped and area-averaged back onto the clip's pixels."""
    channels, _, height, width = video.shape
    if channels not in (1, 3):
        raise ValueError(f"motion vectors need a (C, T, H, W) clip with C = 1 or 3 channels, got {tuple(video.shape)}")
    if upscale < 1:
        raise ValueError(f"upscale must be a positive integer, got {upscale}")
    pixels = (video.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    pixels = einops.repeat(pixels, "c t h w -> t (h u) (w v) (r c)", u=upscale, v=upscale, r=3 // channels)
    pad_h, pad_w = -pixels.shape[1] % _MB, -pixels.shape[2] % _MB
    pixels = np.pad(pixels, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    buffer = io.BytesIO()
    encode_video(pixels, buffer, codec=codec, fps=fps, gop=gop)
    buffer.seek(0)
    cells = decode_motion_vectors(buffer)
    unit = math.gcd(CELL, upscale)  # cells and clip pixels both tile into squares of `unit` encoded pixels
    grow, shrink = CELL // unit, upscale // unit
    units = einops.repeat(cells, "t h w -> t (h a) (w b)", a=grow, b=grow)[:, : height * shrink, : width * shrink]
    return einops.reduce(units, "t (h u) (w v) -> t h w", "mean", u=shrink, v=shrink) / upscale


@gin.configurable(module="mmmae")
class WithMotionVectors(torch.utils.data.Dataset):
    """Adds sample[key] = (T, H, W) float32 codec motion magnitude (pixels per frame) to the
    samples of `dataset`, whose sample['video'] is (C, T, H, W) float in [0, 1].

    Each sample is encoded with `codec` (every `gop` frames an I-frame, P-frames between) after
    upscaling by `upscale`, decoded back with its motion vectors (:func:`clip_motion_vectors`).
    Cost, CPU time per sample on one thread at upscale 4: 16 frames of 64x64 (mgm.gin; 256x256
    encoded) about 50 ms with libx264, 28 ms with mpeg4 (upscale 2: 27 / 13 ms); 8 frames of 32x32
    about 15 / 11 ms; 4 frames of 16x16 about 10 / 6 ms (MovingDigits itself: 1-8 ms). With
    `cache_dir` the map is stored once per distinct clip content and settings (<sha1>.npy) and
    read back afterwards. In gin: `WithMotionVectors.dataset = @train/MovingDigits()` and
    `pretrain.dataset = @WithMotionVectors`.
    """

    def __init__(
        self,
        dataset: torch.utils.data.Dataset = gin.REQUIRED,
        key: str = "motion_vectors",
        upscale: int = 4,
        codec: str = DEFAULT_CODEC,
        fps: int = 8,
        gop: int = 16,
        cache_dir: str | None = None,
    ):
        if not isinstance(upscale, int) or upscale < 1:
            raise ValueError(f"WithMotionVectors.upscale = {upscale!r}: need an integer >= 1")
        if gop < 1:
            raise ValueError(f"WithMotionVectors.gop = {gop}: need >= 1")
        self.dataset, self.key, self.upscale, self.codec, self.fps, self.gop = dataset, key, upscale, codec, fps, gop
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        sample = dict(self.dataset[index])
        if "video" not in sample:
            raise KeyError(
                f"WithMotionVectors needs sample['video'] (C, T, H, W); the sample has keys {sorted(sample)}"
            )
        sample[self.key] = torch.from_numpy(self._magnitude(sample["video"]))
        return sample

    def _magnitude(self, video: torch.Tensor) -> np.ndarray:
        if self.cache_dir is None:
            return clip_motion_vectors(video, self.upscale, self.codec, self.fps, self.gop)
        content = video.detach().float().cpu().contiguous().numpy()
        settings = f"{content.shape}|{self.upscale}|{self.codec}|{self.fps}|{self.gop}".encode()
        path = self.cache_dir / f"{hashlib.sha1(settings + content.tobytes()).hexdigest()}.npy"
        if path.is_file():
            return np.load(path)
        magnitude = clip_motion_vectors(video, self.upscale, self.codec, self.fps, self.gop)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=self.cache_dir, suffix=".partial", delete=False) as handle:
            np.save(handle, magnitude)
        os.replace(handle.name, path)  # atomic: DataLoader workers may write the same entry
        return magnitude
