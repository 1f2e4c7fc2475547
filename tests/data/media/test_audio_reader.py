"""Tests for read_audio on real files written with PyAV: an mp4 with an aac sine, wavs, webm and mkv
(Opus, Vorbis), 5.1 tracks, broken inputs."""

import fractions
import pickle
import wave

import av
import numpy as np
import pytest
import torch

from mmmae.data.media.audio_reader import read_audio
from mmmae.data.media.errors import MediaError, NoAudioTrack

TONE = 110.0  # Hz: the offsets tested (0.25 s, 0.12 s) are not whole periods, so ignoring one shows in the phase
LAG = 0.5 / 44100 + 2e-6  # s: a span is exact to within half a native (44.1 kHz) sample


def write_mp4(path, *, audio_start=0.0, video_start=0.0, seconds=2.0, rate=44100, audio=True):
    """An mp4: 32x32 h264 at 25 fps from ``video_start`` s, and a stereo aac track from ``audio_start`` s
    holding 0.5 sin(2 pi TONE t), t in seconds from the first video frame (the reader's time base)."""
    fps = 25
    # movie_timescale = the sample rate: the edit list that delays a stream is exact, not rounded to ms
    with av.open(str(path), "w", options={"movie_timescale": str(rate)}) as out:
        video = out.add_stream("libx264", rate=fps)
        video.width = video.height = 32
        sound = out.add_stream("aac", rate=rate, layout="stereo") if audio else None
        for i in range(round(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 4 * i % 256, np.uint8), format="rgb24")
            frame.pts = i + round(video_start * fps)
            out.mux(video.encode(frame))
        out.mux(video.encode())
        if not audio:
            return
        t = audio_start - video_start + np.arange(round(seconds * rate)) / rate
        samples = np.stack([0.5 * np.sin(2 * np.pi * TONE * t)] * 2).astype(np.float32)
        for at in range(0, samples.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(samples[:, at : at + 1024].copy(), format="fltp", layout="stereo")
            frame.sample_rate, frame.time_base = rate, fractions.Fraction(1, rate)
            frame.pts = round(audio_start * rate) + at
            out.mux(sound.encode(frame))
        out.mux(sound.encode())


def write_wav(path, channels: np.ndarray, rate: int):
    """A 16-bit PCM wav of channels (C, N) in [-1, 1]."""
    pcm = np.round(channels.T * 32767).astype(np.int16)  # (N, C) interleaved
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels.shape[0])
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())


def tone(start: float, end: float, rate: int = 16000) -> np.ndarray:
    """The expected 0.5 sin(2 pi TONE t) at t = start + j / rate."""
    return 0.5 * np.sin(2 * np.pi * TONE * (start + np.arange(round((end - start) * rate)) / rate))


def lag_seconds(wave: np.ndarray, start: float, rate: int = 16000) -> float:
    """How late ``wave`` is against the expected tone, from a least-squares fit of its phase."""
    t = start + np.arange(len(wave)) / rate
    basis = np.stack([np.sin(2 * np.pi * TONE * t), np.cos(2 * np.pi * TONE * t)], axis=1)
    sin_weight, cos_weight = np.linalg.lstsq(basis, wave, rcond=None)[0]
    return -np.arctan2(cos_weight, sin_weight) / (2 * np.pi * TONE)


def peak_hz(wave: np.ndarray, rate: int = 16000) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave)), n=8 * len(wave)))
    return float(np.argmax(spectrum) * rate / (8 * len(wave)))


@pytest.fixture(scope="module")
def mp4(tmp_path_factory):
    path = tmp_path_factory.mktemp("audio") / "tone.mp4"
    write_mp4(path, seconds=4.0)
    return path


def test_mp4_span_is_the_tone_at_the_right_time(mp4):
    wave = read_audio(mp4, 0.5, 1.3)
    assert wave.shape == (12800,) and wave.dtype == torch.float32
    assert abs(peak_hz(wave.numpy()) - TONE) < 1.0
    assert abs(lag_seconds(wave.numpy(), 0.5)) < LAG
    np.testing.assert_allclose(wave.numpy(), tone(0.5, 1.3), atol=0.04)  # aac is lossy
    assert read_audio(mp4, 0.5, 0.75, sample_rate=8000).shape == (2000,)
    assert read_audio(mp4, 0.1, 0.1 + 1 / 3).shape == (round(16000 / 3),)


def test_a_span_deep_in_the_file_seeks_and_stays_aligned(mp4):
    wave = read_audio(mp4, 3.2, 3.7).numpy()
    assert abs(lag_seconds(wave, 3.2)) < LAG
    np.testing.assert_allclose(wave, tone(3.2, 3.7), atol=0.04)


def test_bytes_input_reads_the_same(mp4):
    torch.testing.assert_close(read_audio(mp4.read_bytes(), 0.5, 1.0), read_audio(str(mp4), 0.5, 1.0))


def test_audio_starting_after_the_video_is_offset_and_zero_padded(tmp_path):
    path = tmp_path / "late.mp4"
    write_mp4(path, audio_start=0.25)
    assert av.open(str(path)).streams.audio[0].start_time > 0  # the file really delays its audio
    late = read_audio(path, 0.5, 1.0).numpy()
    assert abs(lag_seconds(late, 0.5)) < LAG
    np.testing.assert_allclose(late, tone(0.5, 1.0), atol=0.04)
    padded = read_audio(path, 0.0, 0.8).numpy()
    np.testing.assert_array_equal(padded[: round(0.22 * 16000)], 0.0)  # before the stream starts: zero padding
    assert np.abs(padded[: round(0.24 * 16000)]).max() < 0.02  # then the aac priming, silent up to codec pre-echo
    np.testing.assert_allclose(padded[round(0.27 * 16000) :], tone(0.27, 0.8), atol=0.04)


def test_video_starting_after_the_audio_moves_time_zero(tmp_path):
    path = tmp_path / "late_video.mp4"
    write_mp4(path, video_start=0.12)
    wave = read_audio(path, 0.3, 0.9).numpy()  # audio begins at t = -0.12 on the video's time base
    assert abs(lag_seconds(wave, 0.3)) < LAG
    np.testing.assert_allclose(wave, tone(0.3, 0.9), atol=0.04)


@pytest.mark.parametrize("start", [0.25, 1000 / 44100, 10001 / 44100])  # the latter two fall between 16 kHz samples
def test_wav_at_44k_is_resampled_to_16k_and_channels_averaged(tmp_path, start):
    t = np.arange(44100) / 44100
    left, right = 0.6 * np.sin(2 * np.pi * 1000 * t), 0.2 * np.sin(2 * np.pi * 3000 * t + 1.0)
    write_wav(tmp_path / "stereo.wav", np.stack([left, right]), 44100)
    wave = read_audio(tmp_path / "stereo.wav", start, start + 0.5)
    j = start + np.arange(8000) / 16000
    expected = 0.3 * np.sin(2 * np.pi * 1000 * j) + 0.1 * np.sin(2 * np.pi * 3000 * j + 1.0)
    assert wave.shape == (8000,)
    np.testing.assert_allclose(wave.numpy(), expected, atol=3e-3)


def write_encoded(path, codec: str, seconds: float = 2.0, rate: int = 44100):
    """A mono audio-only file (format from the suffix) of 0.5 sin(2 pi TONE t), t from its first sample."""
    with av.open(str(path), "w") as out:
        sound = out.add_stream(codec, rate=rate, layout="mono")
        step = sound.codec_context.frame_size or 1024
        samples = 0.5 * np.sin(2 * np.pi * TONE * np.arange(round(seconds * rate)) / rate)
        for at in range(0, len(samples), step):
            pcm = np.round(samples[None, at : at + step] * 32767).astype(np.int16)
            frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
            frame.sample_rate, frame.time_base, frame.pts = rate, fractions.Fraction(1, rate), at
            out.mux(sound.encode(frame))
        out.mux(sound.encode())


@pytest.mark.parametrize(("suffix", "codec"), [(".flac", "flac"), (".mp3", "libmp3lame")])
def test_flac_and_mp3_start_at_their_first_sample(tmp_path, suffix, codec):
    """An mp3's encoder delay (its stream starts at 0.025 s) is not a delay of the sound."""
    if codec not in av.codecs_available:
        pytest.skip(f"this FFmpeg has no {codec} encoder")
    write_encoded(tmp_path / f"tone{suffix}", codec)
    for start in (0.05, 1.2):
        wave = read_audio(tmp_path / f"tone{suffix}", start, start + 0.5).numpy()
        assert abs(lag_seconds(wave, start)) < LAG
        np.testing.assert_allclose(wave, tone(start, start + 0.5), atol=0.04)


def test_audio_ending_early_is_padded_only_while_it_covers_half_the_span(tmp_path):
    path = tmp_path / "one_second.wav"
    write_wav(path, np.ones((1, 16000)) * 0.5, 16000)
    wave = read_audio(path, 0.6, 1.2).numpy()  # covers 0.4 s of 0.6 s
    assert wave.shape == (9600,)
    np.testing.assert_allclose(wave[:6000], 0.5, atol=1e-4)
    np.testing.assert_array_equal(wave[6400:], 0.0)
    with pytest.raises(MediaError, match=r"covers only 0\.200 s of \[0\.8, 1\.3\)") as error:
        read_audio(path, 0.8, 1.3)
    assert error.value.path == str(path)
    with pytest.raises(MediaError, match=r"covers only 0\.000 s"):
        read_audio(path, 5.0, 6.0)


def test_zero_length_audio_is_a_media_error(tmp_path):
    path = tmp_path / "empty.wav"
    write_wav(path, np.zeros((1, 0)), 16000)
    with pytest.raises(MediaError, match="zero-length audio") as error:
        read_audio(path, 0.0, 1.0)
    assert error.value.path == str(path)


def test_a_file_without_audio_raises_no_audio_track(tmp_path):
    path = tmp_path / "silent.mp4"
    write_mp4(path, audio=False, seconds=0.4)
    for source in (path, path.read_bytes()):
        with pytest.raises(NoAudioTrack, match="no audio stream in the file") as error:
            read_audio(source, 0.0, 0.4)
        assert isinstance(error.value, MediaError)
    assert error.value.path == "<bytes>"
    crossed = pickle.loads(pickle.dumps(NoAudioTrack(str(path))))  # as it leaves a DataLoader worker
    assert type(crossed) is NoAudioTrack and str(crossed) == f"{path}: no audio stream in the file"
    webm = tmp_path / "silent.webm"
    write_webm(webm, "libvpx", None, seconds=0.4)
    with pytest.raises(NoAudioTrack):
        read_audio(webm, 0.0, 0.4)
    with pytest.raises(NoAudioTrack):
        read_audio(webm, 0.0, 0.4, stream=1)


def test_missing_truncated_and_bad_requests(mp4, tmp_path):
    with pytest.raises(MediaError) as error:
        read_audio(tmp_path / "absent.wav", 0.0, 1.0)
    assert error.value.path == str(tmp_path / "absent.wav")
    data = mp4.read_bytes()
    with pytest.raises(MediaError) as error:
        read_audio(data[: len(data) // 2], 0.0, 1.0)
    assert error.value.path == "<bytes>"
    with pytest.raises(MediaError, match="no audio stream 1"):
        read_audio(mp4, 0.0, 1.0, stream=1)
    with pytest.raises(MediaError, match=r"tone.mp4: empty span \[1, 1\) s: a clip of no duration has no audio"):
        read_audio(mp4, 1.0, 1.0)


def write_webm(path, video_codec: str, audio_codec: str | None, seconds: float = 2.0, rate: int = 48000):
    """A webm or mkv (by suffix): 32x32 video at 25 fps and, unless audio_codec is None, a stereo track
    of 0.5 sin(2 pi TONE t) from t = 0."""
    with av.open(str(path), "w") as out:
        video = out.add_stream(video_codec, rate=25)
        video.width = video.height = 32
        video.pix_fmt = "yuv420p"
        # FFmpeg's own vorbis encoder is marked experimental
        options = {"strict": "experimental"}
        sound = out.add_stream(audio_codec, rate=rate, layout="stereo", options=options) if audio_codec else None
        for i in range(round(seconds * 25)):
            out.mux(video.encode(av.VideoFrame.from_ndarray(np.full((32, 32, 3), 4 * i, np.uint8), format="rgb24")))
        out.mux(video.encode())
        if sound is None:
            return
        samples = np.stack([0.5 * np.sin(2 * np.pi * TONE * np.arange(round(seconds * rate)) / rate)] * 2)
        step = sound.codec_context.frame_size or 1024
        for at in range(0, samples.shape[1], step):
            frame = av.AudioFrame.from_ndarray(samples[:, at : at + step].astype(np.float32), format="fltp",
                                               layout="stereo")
            frame.sample_rate, frame.time_base, frame.pts = rate, fractions.Fraction(1, rate), at
            out.mux(sound.encode(frame))
        out.mux(sound.encode())


def tone_fit(wave: np.ndarray, start: float, rate: int = 16000) -> tuple[float, float]:
    """Amplitude and lag (s) of the TONE in ``wave`` whose sample j is at start + j / rate (least squares)."""
    t = start + np.arange(len(wave)) / rate
    basis = np.stack([np.sin(2 * np.pi * TONE * t), np.cos(2 * np.pi * TONE * t)], axis=1)
    sin_weight, cos_weight = np.linalg.lstsq(basis, wave, rcond=None)[0]
    return float(np.hypot(sin_weight, cos_weight)), float(-np.arctan2(cos_weight, sin_weight) / (2 * np.pi * TONE))


@pytest.mark.parametrize(
    ("name", "video_codec", "audio_codec"),
    [("opus.webm", "libvpx-vp9", "libopus"), ("vorbis.webm", "libvpx", "vorbis"), ("opus.mkv", "libx264", "libopus")],
)
def test_webm_and_mkv_tracks_read_at_their_time_and_level(tmp_path, name, video_codec, audio_codec):
    write_webm(tmp_path / name, video_codec, audio_codec)
    for start in (0.3, 1.2):  # from the start, and after a seek
        amplitude, lag = tone_fit(read_audio(tmp_path / name, start, start + 0.5).numpy(), start)
        assert amplitude == pytest.approx(0.5, rel=0.05)  # lossy codecs keep a pure tone's level within a few %
        # Matroska stamps packets in whole ms: the codec delay and the first frame's time are each rounded
        assert abs(lag) < 2 * 0.5e-3 + 0.5 / 48000


SURROUND = (0.4, 0.4, 0.3, 0.9, 0.2, 0.2)  # amplitudes in 5.1 order: L, R, C, LFE, Ls, Rs
SURROUND_HZ = (TONE, TONE, TONE, 50.0, 700.0, 700.0)  # the front tone, an LFE rumble, the surrounds' tone


def write_surround(path, codec: str, layout: str, rate: int = 16000, seconds: float = 1.0) -> np.ndarray:
    """A 5.1 track (float PCM, lossless) in a wav or mkv: channel c is SURROUND[c] sin(2 pi SURROUND_HZ[c] t).
    Returns the channels (6, N) float32."""
    t = np.arange(round(seconds * rate)) / rate
    channels = np.stack([a * np.sin(2 * np.pi * hz * t) for a, hz in zip(SURROUND, SURROUND_HZ)]).astype(np.float32)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        frame = av.AudioFrame.from_ndarray(channels, format="fltp", layout=layout)
        frame.sample_rate, frame.time_base, frame.pts = rate, fractions.Fraction(1, rate), 0
        out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return channels


@pytest.mark.parametrize(("name", "codec", "layout"), [("side.wav", "pcm_f32le", "5.1(side)"),
                                                       ("back.mkv", "pcm_f32le", "5.1")])
def test_5_1_is_downmixed_with_the_standard_coefficients_lfe_left_out(tmp_path, name, codec, layout):
    left, right, centre, _, surround_left, surround_right = write_surround(tmp_path / name, codec, layout)
    # ITU-R BS.775 stereo: Lo = L + C / sqrt 2 + Ls / sqrt 2 (LFE dropped); mono averages Lo and Ro, as for stereo
    lo = left + centre / np.sqrt(2) + surround_left / np.sqrt(2)
    ro = right + centre / np.sqrt(2) + surround_right / np.sqrt(2)
    # float32 all the way: each output sample sums 6 weighted terms, each rounded a few times
    weights = np.array([0.5, 0.5, 1 / np.sqrt(2), 0.0, 0.5 / np.sqrt(2), 0.5 / np.sqrt(2)])
    atol = 8 * np.finfo(np.float32).eps * float(weights @ np.array(SURROUND))
    wave = read_audio(tmp_path / name, 0.0, 1.0).numpy()  # native rate 16 kHz: no resampling
    np.testing.assert_allclose(wave, (lo + ro) / 2, rtol=0, atol=atol)
    front = SURROUND[0] + SURROUND[2] / np.sqrt(2)  # the front tone's level: not the mean over 6 channels
    assert tone_fit(wave, 0.0)[0] == pytest.approx(front, abs=atol)


def test_channels_are_picked_by_name_or_position(tmp_path):
    channels = write_surround(tmp_path / "surround.wav", "pcm_f32le", "5.1(side)")
    front = read_audio(tmp_path / "surround.wav", 0.0, 1.0, channels=["FL", "FR"]).numpy()
    np.testing.assert_allclose(front, (channels[0] + channels[1]) / 2, rtol=0, atol=np.finfo(np.float32).eps)
    np.testing.assert_array_equal(read_audio(tmp_path / "surround.wav", 0.0, 1.0, channels=[3]).numpy(), channels[3])
    with pytest.raises(MediaError, match=r"no audio channels \['TC', 9\]: .*5.1\(side\) has channels 0..5 named"):
        read_audio(tmp_path / "surround.wav", 0.0, 1.0, channels=["FL", "TC", 9])
