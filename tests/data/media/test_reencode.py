"""Re-encoding: keyframe interval, frames and times kept, audio carried, fps and size, the CLI."""

import av
import numpy as np
import pytest

from mmmae.data.media.clip_sampling import SegmentSampling
from mmmae.data.media.errors import MediaError
from mmmae.data.media.reencode import main, output_size, reencode
from mmmae.data.media.video_reader import frame_timestamps, probe_video, read_frames
from tests.data.media.test_video_reader import frame_numbers, write_sine, write_video


def keyframe_indices(path) -> np.ndarray:
    """Display-order indices of the video packets flagged as keyframes."""
    with av.open(str(path)) as container:
        packets = [(p.pts, p.is_keyframe) for p in container.demux(container.streams.video[0]) if p.pts is not None]
    return np.flatnonzero([keyframe for _, keyframe in sorted(packets)])


def audio_codec_and_seconds(path) -> tuple[str, float]:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        return stream.codec_context.name, samples / stream.rate


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "source.mp4"
    write_video(path, frames=60, gop=250, audio=True, size=(32, 48))  # one keyframe
    return path


def test_keyframe_every_gop_frames_with_frames_times_and_audio_kept(source, tmp_path):
    assert len(keyframe_indices(source)) == 1
    out = tmp_path / "out.mp4"
    reencode(source, out, gop=8)
    np.testing.assert_array_equal(keyframe_indices(out), np.arange(0, 60, 8))
    np.testing.assert_allclose(frame_timestamps(out), frame_timestamps(source), atol=1e-9)
    frames, selection = read_frames(out, SegmentSampling(frames=60, mode="center"), np.random.default_rng(0))
    np.testing.assert_array_equal(frame_numbers(frames), np.arange(60))
    assert probe_video(out)[1:] == pytest.approx(probe_video(source)[1:])
    codec, seconds = audio_codec_and_seconds(out)
    assert codec == "aac" and seconds == pytest.approx(audio_codec_and_seconds(source)[1], abs=0.07)


def test_variable_frame_times_are_kept(tmp_path):
    source, out = tmp_path / "vfr.mp4", tmp_path / "out.mp4"
    times_ms = [0, 40, 80, 200, 240, 280, 320, 500, 540]
    write_video(source, times_ms=times_ms, gop=250)
    reencode(source, out, gop=4)
    np.testing.assert_allclose(frame_timestamps(out), np.array(times_ms) / 1000, atol=1e-9)
    np.testing.assert_array_equal(keyframe_indices(out), [0, 4, 8])


def test_constant_fps_and_size(source, tmp_path):
    out = tmp_path / "out.mp4"
    reencode(source, out, gop=5, fps=10, size=16)  # 2.4 s at 10 fps; short side 32 -> 16
    info = probe_video(out)
    assert (info.frames, info.width, info.height) == (24, 24, 16) and info.fps == pytest.approx(10)
    np.testing.assert_array_equal(keyframe_indices(out), np.arange(0, 24, 5))
    frames, _ = read_frames(out, SegmentSampling(frames=24, mode="center"), np.random.default_rng(0))
    # output frame k at k / 10 s shows source frame 2.5 k (25 fps), rounded down
    np.testing.assert_array_equal(frame_numbers(frames), (np.arange(24) * 2.5).astype(int))


def test_output_size():
    assert output_size(48, 32, None) == (48, 32)
    assert output_size(640, 360, 320) == (568, 320)
    assert output_size(640, 360, (101, 51)) == (100, 50)


def test_non_aac_audio_is_reencoded_and_the_cli_runs(tmp_path):
    source, out = tmp_path / "source.mkv", tmp_path / "out.mp4"
    with av.open(str(source), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        write_sine(container, seconds=1.0, codec="pcm_s16le")
        for index in range(25):
            image = np.full((32, 32, 3), 8 * index, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    main([str(source), str(out), "--gop", "4", "--size", "16x16", "--crf", "18"])
    info = probe_video(out)
    assert (info.frames, info.width, info.height, info.has_audio) == (25, 16, 16, True)
    np.testing.assert_array_equal(keyframe_indices(out), np.arange(0, 25, 4))
    codec, seconds = audio_codec_and_seconds(out)
    assert codec == "aac" and seconds == pytest.approx(1.0, abs=0.07)


def test_bad_sources_raise_media_error(tmp_path):
    sound = tmp_path / "sound.mp4"
    with av.open(str(sound), "w") as container:
        write_sine(container, seconds=0.5)
    with pytest.raises(MediaError, match="sound.mp4: no video stream"):
        reencode(sound, tmp_path / "out.mp4")
    with pytest.raises(MediaError, match="absent.mp4: file not found"):
        reencode(tmp_path / "absent.mp4", tmp_path / "out.mp4")


def test_scene_cuts_do_not_move_keyframes(tmp_path):
    source, out = tmp_path / "cuts.mkv", tmp_path / "out.mp4"
    rng = np.random.default_rng(0)
    scenes = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)  # a hard cut every 7 frames
    with av.open(str(source), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"crf": "10"})
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for index in range(28):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(scenes[index // 7], format="rgb24")))
        container.mux(stream.encode())
    reencode(source, out, gop=10)
    np.testing.assert_array_equal(keyframe_indices(out), [0, 10, 20])
