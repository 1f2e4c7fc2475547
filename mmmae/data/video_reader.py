"""Read the frames of a clip from a video file without decoding the whole file.

A source is a path or the whole file as bytes. Times are seconds from the video stream's first
frame (t = 0), as in :mod:`mmmae.data.clip_sampling`. :func:`frame_timestamps` demuxes packets
(no decoding) to learn every frame's time and the keyframes; :func:`read_frames` lets a sampler
choose frames by time, then seeks to the keyframe before each wanted run of frames and decodes
forward only as far as it needs. Bad input raises :class:`MediaError` naming the source.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable, Iterator
from typing import NamedTuple

import av
import numpy as np
import torch
from av.video.reformatter import VideoReformatter

from mmmae.data.clip_sampling import ClipSelection
from mmmae.data.media_errors import MediaError

Source = str | os.PathLike | bytes
Sampler = Callable[[np.ndarray, np.random.Generator, tuple[float, float] | None], ClipSelection]
BACKENDS = ("pyav", "torchcodec")


class VideoInfo(NamedTuple):
    """What :func:`probe_video` learns: frame count, duration (last frame + median interval) in
    seconds, average frame rate (frames / duration), frame size and whether an audio stream exists."""

    frames: int
    duration: float
    fps: float
    width: int
    height: int
    has_audio: bool


class _Packets(NamedTuple):
    """A video stream's packet times in display order: pts (N,) int64, keyframe (N,) bool, time base (s per tick)."""

    pts: np.ndarray
    keyframe: np.ndarray
    time_base: float

    def seconds(self) -> np.ndarray:
        """(N,) float64 seconds from the first frame."""
        return (self.pts - self.pts[0]) * self.time_base


@contextlib.contextmanager
def open_container(source: Source) -> Iterator[av.container.InputContainer]:
    """Open a container; any FFmpeg error inside the block becomes a MediaError naming the source."""
    in_memory = isinstance(source, (bytes, bytearray, memoryview))
    if not in_memory and not os.path.isfile(source):
        raise MediaError(source, "file not found")
    try:
        with av.open(io.BytesIO(source) if in_memory else os.fspath(source)) as container:
            yield container
    except av.FFmpegError as error:
        raise MediaError(source, f"cannot read video: {error.strerror or error}") from error


def _video_stream(container: av.container.InputContainer, source: Source) -> av.VideoStream:
    if not container.streams.video:
        raise MediaError(source, "no video stream")
    return container.streams.video[0]


def _demux(container: av.container.InputContainer, stream: av.VideoStream, source: Source) -> _Packets:
    """Every packet's pts and keyframe flag, sorted by pts; checks the stream is whole."""
    packets = [(packet.pts, packet.is_keyframe) for packet in container.demux(stream) if packet.pts is not None]
    if not packets:
        raise MediaError(source, "video stream has no frames")
    if stream.frames and len(packets) != stream.frames:
        raise MediaError(source, f"truncated: the container lists {stream.frames} frames, {len(packets)} are readable")
    pts, keyframe = (np.array(column) for column in zip(*sorted(packets)))
    return _Packets(pts.astype(np.int64), keyframe.astype(bool), float(stream.time_base))


def frame_timestamps(source: Source) -> np.ndarray:
    """(N,) float64 seconds of every frame of the first video stream, sorted, the first at 0 (demux only)."""
    with open_container(source) as container:
        return _demux(container, _video_stream(container, source), source).seconds()


def probe_video(source: Source) -> VideoInfo:
    """Frame count, duration, fps, size and audio presence of a video (demux only, no decoding)."""
    with open_container(source) as container:
        stream = _video_stream(container, source)
        times = _demux(container, stream, source).seconds()
        steps = np.diff(times)
        dt = float(np.median(steps[steps > 0])) if np.any(steps > 0) else 0.0
        duration = float(times[-1]) + dt
        fps = len(times) / duration if duration > 0 else 0.0
        return VideoInfo(len(times), duration, fps, stream.width, stream.height, bool(container.streams.audio))


def _decode_after_seek(
    container: av.container.InputContainer, stream: av.VideoStream, pts: int
) -> Iterator[av.VideoFrame]:
    """Seek to the keyframe at or before ``pts`` and yield the frames decoded from there on (from
    the start of the file instead if the container's seek lands past ``pts``)."""
    container.seek(int(pts), stream=stream, backward=True, any_frame=False)
    frames = container.decode(stream)
    first = next(frames, None)
    if first is not None and first.pts is not None and first.pts > pts:
        container.seek(0)
        frames = container.decode(stream)
    elif first is not None:
        yield first
    yield from frames


def _decode_pyav(
    container: av.container.InputContainer,
    stream: av.VideoStream,
    packets: _Packets,
    wanted: np.ndarray,
    source: Source,
) -> dict[int, np.ndarray]:
    """Decode the frames at ``wanted`` (K,) sorted unique indices into ``packets``: pts -> (H, W, 3) uint8 RGB.

    Seeks to the keyframe before the first wanted frame and decodes forward; it seeks again
    whenever the next wanted frame's keyframe lies beyond the next frame to decode.
    """
    key_positions = np.union1d(0, np.flatnonzero(packets.keyframe))  # before any keyframe: from the start
    keyframe_of = key_positions[np.searchsorted(key_positions, wanted, side="right") - 1]  # (K,) each one's keyframe
    images: dict[int, np.ndarray] = {}
    # One converter per clip: it keeps its conversion context between frames (2x faster than
    # frame.to_ndarray); not one per process, as its threads would not survive a DataLoader fork.
    to_rgb = VideoReformatter()
    decoded, position = None, -1  # frames since the last seek; index of the last frame decoded
    for index, keyframe in zip(wanted, keyframe_of):
        target = int(packets.pts[index])
        if decoded is None or keyframe > position + 1:  # seeking skips work: a keyframe lies ahead
            decoded, position = _decode_after_seek(container, stream, packets.pts[keyframe]), keyframe - 1
        for frame in decoded:
            if frame.pts is None:
                raise MediaError(source, "a decoded frame has no timestamp")
            position = int(np.searchsorted(packets.pts, frame.pts))
            if frame.pts == target:
                images[target] = to_rgb.reformat(frame, format="rgb24").to_ndarray()
            if frame.pts >= target:
                break
        if target not in images:
            seconds = (target - packets.pts[0]) * packets.time_base
            raise MediaError(source, f"cannot decode the frame at {seconds:.3f} s")
    return images


def _decode_torchcodec(source: Source, packets: _Packets, wanted: np.ndarray) -> dict[int, np.ndarray]:
    """The same frames as :func:`_decode_pyav`, decoded by torchcodec (imported here: optional)."""
    try:
        from torchcodec.decoders import VideoDecoder
    except ImportError as error:
        raise ImportError("backend='torchcodec' needs the torchcodec package (pip install torchcodec)") from error
    in_memory = isinstance(source, (bytes, bytearray, memoryview))
    decoder = VideoDecoder(bytes(source) if in_memory else os.fspath(source), seek_mode="exact")
    batch = decoder.get_frames_at(indices=wanted.tolist()).data  # (K, C, H, W) uint8
    return {int(packets.pts[index]): image.permute(1, 2, 0).numpy() for index, image in zip(wanted, batch)}


def read_frames(
    source: Source,
    selection_fn: Sampler,
    rng: np.random.Generator,
    window: tuple[float, float] | None = None,
    backend: str = "pyav",
) -> tuple[torch.Tensor, ClipSelection]:
    """Decode the clip that ``selection_fn`` picks: frames (T, H, W, 3) uint8 RGB and the selection.

    ``selection_fn(timestamps, rng, window)`` is a clip sampler (``DenseSampling``,
    ``SegmentSampling``); a frame it picks twice is decoded once and repeated.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    with open_container(source) as container:
        stream = _video_stream(container, source)
        packets = _demux(container, stream, source)
        try:
            selection = selection_fn(packets.seconds(), rng, window)
        except MediaError as error:
            raise MediaError(source, error.reason) from error
        wanted = np.unique(selection.indices)
        if backend == "pyav":
            images = _decode_pyav(container, stream, packets, wanted, source)
    if backend == "torchcodec":
        images = _decode_torchcodec(source, packets, wanted)
    clip = np.stack([images[int(packets.pts[index])] for index in selection.indices])
    return torch.from_numpy(clip), selection
