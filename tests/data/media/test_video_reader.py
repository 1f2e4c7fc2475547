"""Video reading from real mp4 files written with PyAV: timestamps, clips by time, seeking, bad files."""

import importlib.util
import re
from fractions import Fraction
from types import SimpleNamespace

import av
import numpy as np
import pytest
import torch

from mmmae.data.media import video_reader
from mmmae.data.media.clip_sampling import DenseSampling, SegmentSampling
from mmmae.data.media.errors import MediaError
from mmmae.data.media.video_reader import VideoInfo, frame_timestamps, probe_video, read_frames

MS = Fraction(1, 1000)
LEVELS = 16  # grey levels per quadrant that code a frame's number


def numbered_image(index: int, height: int = 32, width: int = 32) -> np.ndarray:
    """(H, W, 3) uint8 whose flat quadrants code ``index`` in base 16: top-left, top-right, bottom."""
    image = np.empty((height, width, 3), np.uint8)
    digits = (index % LEVELS, index // LEVELS % LEVELS, index // LEVELS**2)
    image[: height // 2, : width // 2], image[: height // 2, width // 2 :], image[height // 2 :] = (
        8 + 16 * digit for digit in digits
    )
    return image


def frame_numbers(frames: torch.Tensor) -> np.ndarray:
    """(T,) the numbers that :func:`numbered_image` coded into decoded frames (T, H, W, 3)."""
    _, height, width, _ = frames.shape
    m = height // 8  # margin: scaling and compression blur the quadrants' edges
    upper, lower = slice(m, height // 2 - m), slice(height // 2 + m, height - m)
    parts = (frames[:, upper, m : width // 2 - m], frames[:, upper, width // 2 + m : width - m], frames[:, lower, m:-m])
    digits = [np.round((part.float().mean((1, 2, 3)).numpy() - 8) / 16).astype(int) for part in parts]
    return digits[0] + LEVELS * digits[1] + LEVELS**2 * digits[2]


def write_video(
    target,
    frames: int = 40,
    fps: int = 25,
    gop: int = 16,
    times_ms: list[int] | None = None,
    audio: bool = False,
    size: tuple[int, int] = (32, 32),
    container_options: dict | None = None,
) -> None:
    """Write numbered frames (H, W = size) as H.264 (keyframe every ``gop``, B-frames on) into an
    mp4 path or file object; frame i at times_ms[i] ms (default i / fps s); optional AAC sine audio."""
    times_ms = times_ms if times_ms is not None else [round(1000 * i / fps) for i in range(frames)]
    with av.open(target, "w", format="mp4", options=container_options or {}) as container:
        options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0", "crf": "10", "threads": "1"}
        stream = container.add_stream("libx264", rate=fps, options=options)
        stream.height, stream.width = size
        stream.pix_fmt, stream.codec_context.time_base = "yuv420p", MS
        if audio:
            write_sine(container, seconds=times_ms[-1] / 1000 + 1 / fps)
        for index, time in enumerate(times_ms):
            frame = av.VideoFrame.from_ndarray(numbered_image(index, *size), format="rgb24")
            frame.pts, frame.time_base = time, MS
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def write_sine(container, seconds: float, rate: int = 16000, codec: str = "aac") -> None:
    """Encode ``seconds`` of a 440 Hz mono sine into a new audio stream of an open output container."""
    stream = container.add_stream(codec, rate=rate, layout="mono")
    samples = np.sin(2 * np.pi * 440 * np.arange(round(seconds * rate)) / rate).astype(np.float32)
    frame = av.AudioFrame.from_ndarray(samples[None], format="fltp", layout="mono")
    frame.sample_rate, frame.pts, frame.time_base = rate, 0, Fraction(1, rate)
    container.mux(stream.encode(frame))
    container.mux(stream.encode())


@pytest.fixture
def clip_path(tmp_path):
    path = tmp_path / "clip.mp4"
    write_video(path, frames=40, audio=True)
    return path


def test_timestamps_come_from_packets_in_display_order(clip_path):
    np.testing.assert_allclose(frame_timestamps(clip_path), np.arange(40) / 25, atol=1e-9)


def test_probe_video(clip_path, tmp_path):
    info = probe_video(clip_path)
    assert isinstance(info, VideoInfo)
    assert (info.frames, info.width, info.height, info.has_audio) == (40, 32, 32, True)
    assert info.duration == pytest.approx(1.6) and info.fps == pytest.approx(25)
    silent = tmp_path / "silent.mp4"
    write_video(silent, frames=10, size=(16, 48))
    assert probe_video(silent)[:1] + probe_video(silent)[3:] == (10, 48, 16, False)


def test_dense_clip_decodes_the_selected_frames(clip_path):
    sampler = DenseSampling(frames=4, stride=3, mode="center")
    frames, selection = read_frames(clip_path, sampler, np.random.default_rng(0))
    assert frames.shape == (4, 32, 32, 3) and frames.dtype == torch.uint8
    # 40 frames, span (3 * 3 + 1) frames: starts 0..30, the centre 15
    np.testing.assert_array_equal(selection.indices, [15, 18, 21, 24])
    np.testing.assert_array_equal(frame_numbers(frames), selection.indices)
    assert (selection.start, selection.end) == pytest.approx((0.6, 1.0))


def test_random_clips_and_segments_decode_what_they_select(clip_path):
    rng = np.random.default_rng(3)
    for sampler in (DenseSampling(frames=5, stride=2), SegmentSampling(frames=6)):
        for _ in range(3):
            frames, selection = read_frames(clip_path, sampler, rng)
            np.testing.assert_array_equal(frame_numbers(frames), selection.indices)


def test_variable_frame_rate_is_sampled_by_time(tmp_path):
    times_ms = [0, 40, 80, 120, 160, 300, 340, 380, 420, 600, 640, 680]  # 25 fps with two gaps
    path = tmp_path / "vfr.mp4"
    write_video(path, times_ms=times_ms, gop=4)
    np.testing.assert_allclose(frame_timestamps(path), np.array(times_ms) / 1000, atol=1e-9)
    frames, selection = read_frames(path, DenseSampling(9, 2, "center", "fail"), np.random.default_rng(0))
    # dt = 40 ms; the clip spans 17 * 40 = 680 ms of 720: it starts at 0 or 40 ms, centred at 0;
    # it wants 0, 80, ..., 640 ms
    np.testing.assert_array_equal(selection.indices, [0, 2, 4, 4, 5, 7, 8, 8, 10])
    np.testing.assert_array_equal(frame_numbers(frames), selection.indices)
    assert torch.equal(frames[2], frames[3]) and torch.equal(frames[6], frames[7])


def test_window_restricts_the_clip(clip_path):
    rng = np.random.default_rng(1)
    for _ in range(5):
        frames, selection = read_frames(clip_path, DenseSampling(frames=3, stride=2), rng, window=(0.8, 1.2))
        assert 20 <= selection.indices.min() and selection.indices.max() < 30
        np.testing.assert_array_equal(frame_numbers(frames), selection.indices)


def test_short_video_pads_by_repeating_the_last_frame_or_fails_naming_the_file(tmp_path):
    path = tmp_path / "short.mp4"
    write_video(path, frames=6, gop=4)
    frames, selection = read_frames(path, DenseSampling(frames=4, stride=2), np.random.default_rng(0))
    np.testing.assert_array_equal(frame_numbers(frames), [0, 2, 4, 5])
    with pytest.raises(MediaError, match="short.mp4.*clip needs") as error:
        read_frames(path, DenseSampling(frames=4, stride=2, short="fail"), np.random.default_rng(0))
    assert error.value.path == str(path)


def count_decoded_frames(monkeypatch) -> dict[str, int]:
    """Counts seeks and frames decoded by the PyAV path from now on."""
    counts = {"seeks": 0, "frames": 0}
    decode = video_reader._decode_after_seek

    def counting(*args):
        counts["seeks"] += 1
        for frame in decode(*args):
            counts["frames"] += 1
            yield frame

    monkeypatch.setattr(video_reader, "_decode_after_seek", counting)
    return counts


def test_a_clip_from_a_long_video_decodes_only_near_it(tmp_path, monkeypatch):
    path = tmp_path / "long.mp4"
    write_video(path, frames=300, gop=16)
    counts = count_decoded_frames(monkeypatch)
    frames, selection = read_frames(path, DenseSampling(frames=4, stride=2), np.random.default_rng(0), window=(9, 10))
    np.testing.assert_array_equal(frame_numbers(frames), selection.indices)
    assert selection.indices[0] >= 225
    # each frame once at most, from the keyframe before the window (224) to its last frame (249)
    assert counts["seeks"] <= 2 and counts["frames"] <= 250 - 224

    counts["seeks"] = counts["frames"] = 0
    frames, selection = read_frames(path, SegmentSampling(frames=4, mode="center"), np.random.default_rng(0))
    np.testing.assert_array_equal(selection.indices, [37, 112, 187, 262])
    np.testing.assert_array_equal(frame_numbers(frames), selection.indices)
    assert counts["seeks"] == 4 and counts["frames"] <= 4 * (16 + 4)


@pytest.mark.parametrize("suffix, codec", [("avi", "mpeg4"), ("webm", "libvpx-vp9"), ("mkv", "libx264")])
def test_other_containers_and_codecs(tmp_path, suffix, codec):
    path = tmp_path / f"clip.{suffix}"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25, options={"g": "8"})
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for index in range(30):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(numbered_image(index), format="rgb24")))
        container.mux(stream.encode())
    np.testing.assert_allclose(frame_timestamps(path), np.arange(30) / 25, atol=1e-9)
    frames, selection = read_frames(path, SegmentSampling(frames=5), np.random.default_rng(0))
    np.testing.assert_array_equal(frame_numbers(frames), selection.indices)


def test_a_seek_that_lands_too_late_restarts_from_the_beginning():
    class Container:  # seeks badly: always to frame 5
        def __init__(self):
            self.position = 0

        def seek(self, offset, **options):
            self.position = 0 if offset == 0 and "stream" not in options else 5

        def decode(self, stream):
            return (SimpleNamespace(pts=pts) for pts in range(self.position, 8))

    frames = video_reader._decode_after_seek(Container(), None, 3)
    assert [frame.pts for frame in frames] == list(range(8))
    assert [frame.pts for frame in video_reader._decode_after_seek(Container(), None, 6)] == [5, 6, 7]


def test_bytes_input_reads_like_a_path(clip_path):
    sampler = SegmentSampling(frames=5, mode="random")
    from_path = read_frames(clip_path, sampler, np.random.default_rng(7))
    from_bytes = read_frames(clip_path.read_bytes(), sampler, np.random.default_rng(7))
    assert torch.equal(from_path[0], from_bytes[0])
    np.testing.assert_array_equal(from_path[1].indices, from_bytes[1].indices)
    np.testing.assert_array_equal(frame_timestamps(clip_path.read_bytes()), frame_timestamps(clip_path))
    assert probe_video(clip_path.read_bytes()) == probe_video(clip_path)


@pytest.mark.parametrize("faststart", [False, True])  # the index (moov) at the end, or first
def test_truncated_file_raises_media_error_naming_it(tmp_path, faststart):
    path, cut = tmp_path / "whole.mp4", tmp_path / "cut.mp4"
    write_video(path, frames=40, audio=True, container_options={"movflags": "faststart"} if faststart else None)
    data = path.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    for call in (frame_timestamps, probe_video, lambda source: read_frames(source, DenseSampling(4, 2), None)):
        with pytest.raises(MediaError) as error:
            call(cut)
        assert error.value.path == str(cut) and str(cut) in str(error.value)
    with pytest.raises(MediaError, match="^<bytes>: "):
        frame_timestamps(data[: len(data) // 2])


@pytest.mark.parametrize(
    ("suffix", "video_codec", "audio_codec"),
    [("webm", "libvpx-vp9", "libopus"), ("webm", "libvpx", "vorbis"), ("mkv", "libx264", "aac"),
     ("mp4", "libx264", "aac")],
)
def test_a_truncated_file_says_how_much_of_its_stated_duration_is_left(tmp_path, suffix, video_codec, audio_codec):
    path = tmp_path / f"whole.{suffix}"
    write_av(path, video_codec, audio_codec, frames=50, options={"movflags": "faststart"} if suffix == "mp4" else {})
    assert len(frame_timestamps(path)) == 50  # whole: its packets reach the 2 s it states
    data = path.read_bytes()
    media = data.find(b"mdat") if suffix == "mp4" else 0  # cut the mp4's frames, not its index (moov, first)
    for keep in (0.5, 0.8):
        cut = tmp_path / f"cut_{keep}.{suffix}"
        cut.write_bytes(data[: media + round((len(data) - media) * keep)])
        for call in (frame_timestamps, probe_video, lambda source: read_frames(source, DenseSampling(4, 2), None)):
            with pytest.raises(MediaError) as error:
                call(cut)
            match = re.fullmatch(r"truncated at (\d+\.\d\d) of (2\.0\d) seconds", error.value.reason)
            assert match and 0 < float(match[1]) < 1.9, error.value.reason
            assert error.value.path == str(cut)


def write_av(path, video_codec: str, audio_codec: str, frames: int, options: dict) -> None:
    """numbered 32x32 frames at 25 fps and as long a stereo track of silence, in the container the suffix says."""
    with av.open(str(path), "w", options=options) as container:
        video = container.add_stream(video_codec, rate=25, options={"g": "8", "threads": "1"})
        video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        # FFmpeg's own vorbis encoder is marked experimental
        audio = container.add_stream(audio_codec, rate=48000, layout="stereo", options={"strict": "experimental"})
        for index in range(frames):
            container.mux(video.encode(av.VideoFrame.from_ndarray(numbered_image(index), format="rgb24")))
        container.mux(video.encode())
        silence = av.AudioFrame.from_ndarray(np.zeros((2, frames * 48000 // 25), np.float32), format="fltp",
                                             layout="stereo")
        silence.sample_rate, silence.time_base, silence.pts = 48000, Fraction(1, 48000), 0
        container.mux(audio.encode(silence))
        container.mux(audio.encode())


def test_a_single_frame_and_a_still_image_are_no_video(tmp_path):
    write_video(tmp_path / "one.mp4", frames=1)
    image = av.VideoFrame.from_ndarray(numbered_image(3), format="rgb24")
    with av.open(str(tmp_path / "photo.mp4"), "w", format="image2pipe") as container:  # a PNG named .mp4
        stream = container.add_stream("png", rate=1)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "rgb24"
        container.mux(stream.encode(image))
        container.mux(stream.encode())
    for call in (frame_timestamps, probe_video, lambda source: read_frames(source, DenseSampling(4, 2), None)):
        with pytest.raises(MediaError, match="one.mp4: the video has a single frame; a clip needs 2 or more"):
            call(tmp_path / "one.mp4")
        with pytest.raises(MediaError, match="photo.mp4: a still image \\(png\\), not a video"):
            call(tmp_path / "photo.mp4")


def test_audio_only_and_missing_files_raise_media_error(tmp_path):
    path = tmp_path / "sound.mp4"
    with av.open(path, "w") as container:
        write_sine(container, seconds=0.5)
    for call in (frame_timestamps, probe_video, lambda source: read_frames(source, DenseSampling(4, 2), None)):
        with pytest.raises(MediaError, match="sound.mp4: no video stream"):
            call(path)
        with pytest.raises(MediaError, match="absent.mp4: file not found"):
            call(tmp_path / "absent.mp4")


def test_torchcodec_backend_is_optional(clip_path):
    sampler = DenseSampling(frames=4, stride=3, mode="center")
    if importlib.util.find_spec("torchcodec") is None:
        with pytest.raises(ImportError, match="torchcodec"):
            read_frames(clip_path, sampler, np.random.default_rng(0), backend="torchcodec")
    else:
        expected = read_frames(clip_path, sampler, np.random.default_rng(0))[0]
        frames = read_frames(clip_path, sampler, np.random.default_rng(0), backend="torchcodec")[0]
        assert frames.shape == expected.shape and (frames.int() - expected.int()).abs().float().mean() < 2
    with pytest.raises(ValueError, match="backend"):
        read_frames(clip_path, sampler, np.random.default_rng(0), backend="decord")
