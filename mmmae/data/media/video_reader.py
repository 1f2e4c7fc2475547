"""Read the frames of a clip from a video file without decoding the whole file.

A source is a path or the whole file as bytes. Times are seconds from the video stream's first
frame (t = 0), as in :mod:`mmmae.data.media.clip_sampling`. :func:`frame_timestamps` demuxes packets
(no decoding) to learn every frame's time and the keyframes; :func:`read_frames` lets a sampler
choose frames by time, then seeks to the keyframe before each wanted run of frames and decodes
forward only as far as it needs. Bad input raises :class:`MediaError` naming the source.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import NamedTuple

import av
import numpy as np
import torch
from av.video.reformatter import VideoReformatter

from mmmae.data.media.clip_sampling import ClipSelection
from mmmae.data.media.container import Source, open_container
from mmmae.data.media.errors import MediaError

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


def _video_stream(container: av.container.InputContainer, source: Source) -> av.VideoStream:
    """The first video stream; MediaError if there is none or the file is a still image."""
    if container.format.name == "image2" or container.format.name.endswith("_pipe"):  # FFmpeg's image demuxers
        codec = container.streams.video[0].codec_context.name if container.streams.video else "unknown"
        raise MediaError(source, f"a still image ({codec}), not a video")
    if not container.streams.video:
        raise MediaError(source, "no video stream")
    return container.streams.video[0]


def _demux(container: av.container.InputContainer, stream: av.VideoStream, source: Source) -> _Packets:
    """Every packet's pts and keyframe flag, sorted by pts; checks that the file is whole and has 2 frames or more.

    Whole: every frame the container lists is there, and the packets of all streams reach the duration
    it states, to within two of the longest packets (encoder padding and priming make them differ by one).
    """
    frames, spans = [], {}  # (pts, keyframe) of the video's packets; stream -> [(start s, duration s)] of its packets
    for packet in container.demux():
        if packet.pts is None:
            continue
        spans.setdefault(packet.stream.index, []).append(
            (float(packet.pts * packet.time_base), float((packet.duration or 0) * packet.time_base))
        )
        if packet.stream.index == stream.index:
            frames.append((packet.pts, packet.is_keyframe))
    _check_whole(container, stream, source, len(frames), *_extent(spans))
    if not frames:
        raise MediaError(source, "video stream has no frames")
    if len(frames) < 2:
        raise MediaError(source, "the video has a single frame; a clip needs 2 or more (their interval sets its time)")
    pts, keyframe = (np.array(column) for column in zip(*sorted(frames)))
    return _Packets(pts.astype(np.int64), keyframe.astype(bool), float(stream.time_base))


def _extent(spans: dict[int, list[tuple[float, float]]]) -> tuple[float, float]:
    """Where the latest packet of any stream ends, and the longest packet, in seconds; a packet
    without a duration lasts its stream's median interval between packets."""
    end, longest = 0.0, 0.0
    for packets in spans.values():
        starts, durations = np.array(packets).T  # (P,) each
        steps = np.diff(np.sort(starts))
        durations = np.where(durations > 0, durations, float(np.median(steps)) if len(steps) else 0.0)
        end, longest = max(end, float((starts + durations).max())), max(longest, float(durations.max()))
    return end, longest


def _check_whole(
    container: av.container.InputContainer, stream: av.VideoStream, source: Source, frames: int, read_end: float,
    longest: float,
) -> None:
    """MediaError if fewer frames are readable than the container lists, or the packets end (read_end, s)
    more than two of the longest packets before the duration it states."""
    start = (container.start_time or 0) / av.time_base
    stated = None if container.duration is None else container.duration / av.time_base  # a live recording: None
    if stated is not None and (frames < stream.frames or read_end - start < stated - 2 * longest):
        raise MediaError(source, f"truncated at {read_end - start:.2f} of {stated:.2f} seconds")
    if frames < stream.frames:
        raise MediaError(source, f"truncated: {frames} of the {stream.frames} frames the container lists are readable")


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
