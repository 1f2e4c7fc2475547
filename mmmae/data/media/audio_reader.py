"""Read a span of audio, mono and resampled, on the video's time base.

Time base: seconds from the first frame of the container's first video stream (t = 0); the
audio stream's own start offset is taken into account, so an audio track that starts 0.25 s
after the video has its first sample at t = 0.25. A file without a video stream (a wav, flac
or mp3 next to the video) starts at its first audio sample: t = 0 there.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from fractions import Fraction

import av
import numpy as np
import torch
import torchaudio

from mmmae.data.media.container import open_container
from mmmae.data.media.errors import MediaError, NoAudioTrack

MARGIN = 0.1  # s decoded beyond each end of the span: room for the resampling filter
MIN_COVERAGE = 0.5  # fraction of the span the audio must cover; the rest is zero-padded


def read_audio(
    source: str | os.PathLike | bytes,
    start: float,
    end: float,
    sample_rate: int = 16000,
    stream: str | int = "audio",
    channels: Sequence[int | str] | None = None,
) -> torch.Tensor:
    """The span [start, end) of an audio stream as a mono waveform (S,) float32, S = round((end - start) * sample_rate).

    source: a media file (mp4, mkv, webm, wav, flac, mp3, ...) or its bytes. stream: "audio" for the
    first audio stream, or an int indexing the file's audio streams. channels: None downmixes to
    mono (see :func:`_mono`); else the channels to average, by position (0, 1, ...) or by
    FFmpeg's name ("FL", "FR", "FC", "LFE", "BL", "SL", ...). The audio is resampled with
    torchaudio; output sample j is at time start + j / sample_rate. Where the audio does not reach
    (it starts late or ends early) the waveform is zero, allowed only while the audio covers at
    least half the span. NoAudioTrack if the file has no audio stream; MediaError for an empty
    span, a missing, unreadable or truncated file, a missing channel, zero-length audio, or too
    little coverage.
    """
    if not end > start:
        raise MediaError(source, f"empty span [{start:g}, {end:g}) s: a clip of no duration has no audio to read")
    with open_container(source) as container:
        audio = _audio_stream(container, source, stream)
        pick = None if channels is None else _channel_positions(audio, channels, source)
        samples, native_rate, first = _decode_span(container, audio, start, end, pick)
        if not len(samples) and _is_empty(container, audio):
            raise MediaError(source, "zero-length audio: the audio stream holds no samples")
    return _place(source, samples, native_rate, first, start, end, sample_rate)


def _audio_stream(container: av.container.InputContainer, source, stream: str | int) -> av.AudioStream:
    """The requested audio stream; NoAudioTrack if the file has none, MediaError if it has not that many."""
    streams = container.streams.audio
    index = 0 if stream == "audio" else stream
    if not isinstance(index, int):
        raise ValueError(f"read_audio: stream must be 'audio' or an int, got {stream!r}")
    if not streams:
        raise NoAudioTrack(source)
    if not 0 <= index < len(streams):
        raise MediaError(source, f"no audio stream {index} (the file has {len(streams)} audio streams)")
    return streams[index]


def _channel_positions(stream: av.AudioStream, channels: Sequence[int | str], source) -> list[int]:
    """Positions in the stream's layout of ``channels`` (positions or names); MediaError for one it lacks."""
    names = [channel.name for channel in stream.layout.channels]
    positions = [names.index(c) if c in names else c for c in channels]
    wrong = [c for c in positions if not (isinstance(c, int) and 0 <= c < len(names))]
    if wrong or not positions:
        raise MediaError(source, f"no audio channels {wrong or '(none chosen)'}: the stream's layout "
                                 f"{stream.layout.name} has channels 0..{len(names) - 1} named {names}")
    return positions


def _mono(frame: av.AudioFrame, pick: list[int] | None, to_float: av.AudioResampler,
          to_stereo: av.AudioResampler) -> list[np.ndarray]:
    """A decoded frame as mono (1, n) float32 arrays: the mean of the channels at positions ``pick``
    or, for pick None, the downmix: more than two channels are first downmixed to stereo by
    libswresample with the ITU-R BS.775 coefficients (L + 0.707 C + 0.707 Ls, LFE left out), then the
    two averaged, as a stereo file's are; mono stays as it is."""
    resampler = to_stereo if pick is None and len(frame.layout.channels) > 2 else to_float
    rows = slice(None) if pick is None else pick
    return [converted.to_ndarray()[rows].mean(axis=0, keepdims=True) for converted in resampler.resample(frame)]


def _seconds(pts: int | None, time_base: Fraction | None) -> float:
    """pts in seconds, 0 when unknown."""
    return float(pts * time_base) if pts is not None and time_base is not None else 0.0


def _decode_span(
    container: av.container.InputContainer, stream: av.AudioStream, start: float, end: float, pick: list[int] | None
) -> tuple[np.ndarray, int, float]:
    """Decode about [start - MARGIN, end + MARGIN): mono samples (N,) float32 (N may be 0), their native
    sample rate, and the time of samples[0] on the video time base. pick: the channels to average
    (positions), or None to downmix."""
    videos = container.streams.video
    reference = videos[0] if videos else stream  # its first pts is t = 0
    zero = _seconds(reference.start_time, reference.time_base)
    cursor = _seconds(stream.start_time, stream.time_base) - zero  # where the next frame starts if it has no pts
    # A decoder restarts cold after a seek: land two codec frames early so its warm-up is dropped too.
    target = start - MARGIN - 2 * (stream.codec_context.frame_size or 0) / (stream.sample_rate or 1)
    if target > cursor:  # seek only inside the stream: never lose its first samples
        container.seek(round((target + zero) / stream.time_base), stream=stream, backward=True)
    to_float = av.AudioResampler(format="fltp")  # native rate and layout: only the sample format changes
    to_stereo = av.AudioResampler(format="fltp", layout="stereo")
    chunks, first, native_rate = [], start, stream.sample_rate or 1
    for frame in container.decode(stream):
        time = cursor if frame.pts is None else _seconds(frame.pts, frame.time_base or stream.time_base) - zero
        native_rate, cursor = frame.sample_rate, time + frame.samples / frame.sample_rate
        if cursor <= start - MARGIN:
            continue
        if time >= end + MARGIN:
            break
        first = time if not chunks else first
        chunks += _mono(frame, pick, to_float, to_stereo)  # (1, n) each
    if not chunks:
        return np.zeros(0, np.float32), native_rate, first
    return np.concatenate(chunks, axis=1)[0], native_rate, first


def _is_empty(container: av.container.InputContainer, stream: av.AudioStream) -> bool:
    """Whether the stream decodes to no samples at all (read from its start)."""
    container.seek(0)
    return not any(frame.samples for frame in container.decode(stream))


def _place(
    source, samples: np.ndarray, native_rate: int, first: float, start: float, end: float, sample_rate: int
) -> torch.Tensor:
    """Resample samples (N,) whose first is at time ``first`` and cut [start, end) out, zero where they do not reach.

    Leading zeros move the chunk's start onto an instant where both sample grids meet the output's
    (start + j / sample_rate), so the cut is exact to within half a native sample.
    """
    covered = max(min(end, first + len(samples) / native_rate) - max(start, first), 0.0)
    if covered < MIN_COVERAGE * (end - start):
        raise MediaError(source, f"audio covers only {covered:.3f} s of [{start:g}, {end:g})")
    period = native_rate // math.gcd(native_rate, sample_rate)  # native samples between common instants
    lead = round((first - start) * native_rate) % period
    chunk = torch.cat([torch.zeros(lead), torch.from_numpy(samples)])
    resampled = torchaudio.functional.resample(chunk, native_rate, sample_rate)
    offset = round((first - lead / native_rate - start) * sample_rate)  # output index of resampled[0]
    length = round((end - start) * sample_rate)
    lo, hi = max(offset, 0), min(offset + len(resampled), length)
    wave = torch.zeros(length)
    wave[lo:hi] = resampled[lo - offset : hi - offset]
    return wave
