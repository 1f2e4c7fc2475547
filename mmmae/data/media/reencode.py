"""Re-encode videos so clips can be read by seeking: H.264 with a keyframe every ``gop`` frames.

Reading a clip decodes from the keyframe before it (:mod:`mmmae.data.media.video_reader`), so a
dataset downloaded with sparse keyframes (YouTube: one every few seconds) reads faster after
``python -m mmmae.data.media.reencode SRC DST --gop 16``. Audio is copied when it is AAC, else
re-encoded to AAC. Frame times are kept unless ``fps`` asks for a constant rate.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator, Sequence
from fractions import Fraction

import av
from av.video.frame import PictureType

from mmmae.data.media.container import Source, open_container
from mmmae.data.media.errors import MediaError

_DEFAULT_RATE = Fraction(25)  # when the source states no frame rate


def _even(value: float) -> int:
    """``value`` rounded down to an even size >= 2 (yuv420p needs even frame sizes)."""
    return max(2, int(value) // 2 * 2)


def output_size(width: int, height: int, size: int | tuple[int, int] | None) -> tuple[int, int]:
    """(width, height) of the output: ``size`` as (width, height), or an int for the short side
    (aspect ratio kept), or None for the source size; rounded to even numbers."""
    if size is None:
        return _even(width), _even(height)
    if isinstance(size, int):
        scale = size / min(width, height)
        return _even(width * scale), _even(height * scale)
    return _even(size[0]), _even(size[1])


class _ConstantRate:
    """Turns decoded frames into a constant-rate sequence: output frame k (time first + k / fps)
    shows the source frame on screen at that time, so frames repeat or drop."""

    def __init__(self, fps: Fraction):
        self.fps = fps
        self.first_pts: int | None = None  # of output frame 0, in 1 / fps units
        self.count = 0
        self.previous: av.VideoFrame | None = None
        self.previous_time = 0.0  # source time (s) of the previous frame; encoding rebases its pts
        self.interval = 1 / float(fps)  # source frame interval, updated as frames arrive

    def _until(self, seconds: float) -> Iterator[av.VideoFrame]:
        """The previous frame, re-stamped for each output time before ``seconds`` (encoding copies it)."""
        while self.previous is not None and (self.first_pts + self.count) / self.fps < seconds - 1e-9:
            self.previous.pts, self.previous.time_base = self.first_pts + self.count, 1 / self.fps
            self.count += 1
            yield self.previous

    def push(self, frame: av.VideoFrame) -> Iterator[av.VideoFrame]:
        seconds = float(frame.time)
        if self.first_pts is None:
            self.first_pts = round(seconds * self.fps)
        yield from self._until(seconds)
        if self.previous is not None and seconds > self.previous_time:
            self.interval = seconds - self.previous_time
        self.previous, self.previous_time = frame, seconds

    def flush(self) -> Iterator[av.VideoFrame]:
        yield from self._until(self.previous_time + self.interval)


def _add_streams(
    target: av.container.OutputContainer,
    video_in: av.VideoStream,
    audio_in: av.AudioStream | None,
    rate: Fraction,
    frame_size: tuple[int, int],
    gop: int,
    crf: int,
    keep_times: bool,
) -> tuple[av.VideoStream, av.AudioStream | None, bool]:
    """The output's video stream (libx264, a keyframe every ``gop`` frames exactly, no scene-cut
    keyframes) and audio stream (None without audio), and whether audio packets are copied."""
    options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0", "crf": str(crf)}
    video_out = target.add_stream("libx264", rate=rate, options=options)
    video_out.width, video_out.height = frame_size
    video_out.pix_fmt = "yuv420p"
    if keep_times:
        video_out.codec_context.time_base = video_in.time_base
    if audio_in is None:
        return video_out, None, False
    if audio_in.codec_context.name == "aac":
        return video_out, target.add_stream_from_template(audio_in), True
    return video_out, target.add_stream("aac", rate=audio_in.rate), False


def reencode(
    src: Source,
    dst: str | os.PathLike,
    gop: int = 16,
    crf: int = 23,
    fps: float | None = None,
    size: int | tuple[int, int] | None = None,
) -> None:
    """Re-encode ``src``'s first video stream to libx264 (yuv420p, keyframe every ``gop`` frames,
    quality ``crf``) into ``dst`` (container from its extension), with its first audio stream
    copied (AAC) or re-encoded to AAC. ``fps``: constant output rate (default: the source's
    frame times); ``size``: (width, height) or the short side in pixels (default: source size).
    Any FFmpeg error, reading or writing, raises :class:`MediaError` naming ``src``.
    """
    if gop < 1:
        raise ValueError(f"gop must be positive, got {gop}")
    with open_container(src) as source:
        if not source.streams.video:
            raise MediaError(src, "no video stream")
        video_in = source.streams.video[0]
        audio_in = source.streams.audio[0] if source.streams.audio else None
        rate = Fraction(fps).limit_denominator(1001) if fps else Fraction(video_in.average_rate or _DEFAULT_RATE)
        width, height = output_size(video_in.width, video_in.height, size)
        retime = _ConstantRate(rate) if fps else None
        with av.open(os.fspath(dst), "w") as target:
            video_out, audio_out, copy = _add_streams(
                target, video_in, audio_in, rate, (width, height), gop, crf, keep_times=retime is None
            )
            for packet in source.demux(*(stream for stream in (video_in, audio_in) if stream is not None)):
                if packet.stream is video_in:
                    for frame in packet.decode():
                        image = frame.reformat(width=width, height=height, format="yuv420p")
                        image.pts, image.time_base = frame.pts, frame.time_base
                        image.pict_type = PictureType.NONE  # the source's I-frames would force keyframes
                        for out in retime.push(image) if retime else (image,):
                            target.mux(video_out.encode(out))
                elif copy:
                    if packet.dts is not None:  # not the demuxer's final empty packet
                        packet.stream = audio_out
                        target.mux(packet)
                else:
                    for frame in packet.decode():
                        target.mux(audio_out.encode(frame))
            for out in retime.flush() if retime else ():
                target.mux(video_out.encode(out))
            target.mux(video_out.encode())
            if audio_out is not None and not copy:
                target.mux(audio_out.encode())


def _size(text: str) -> int | tuple[int, int]:
    """"320" (short side) or "320x240" (width x height)."""
    width, _, height = text.lower().partition("x")
    return (int(width), int(height)) if height else int(width)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mmmae.data.media.reencode", description=__doc__.splitlines()[0])
    parser.add_argument("src", help="input video")
    parser.add_argument("dst", help="output video; the container follows the extension (.mp4, .mkv)")
    parser.add_argument("--gop", type=int, default=16, help="frames between keyframes (default 16)")
    parser.add_argument("--crf", type=int, default=23, help="x264 quality, lower is better (default 23)")
    parser.add_argument("--fps", type=float, default=None, help="constant output frame rate (default: keep times)")
    parser.add_argument("--size", type=_size, default=None, help="short side (320) or WIDTHxHEIGHT (320x240)")
    args = parser.parse_args(argv)
    reencode(args.src, args.dst, gop=args.gop, crf=args.crf, fps=args.fps, size=args.size)


if __name__ == "__main__":
    main()
