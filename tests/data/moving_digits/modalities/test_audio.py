"""Tests for the MovingDigits audio renderer: pitch, Doppler, loudness, envelope, timbre."""

import dataclasses

import numpy as np
import pytest

from mmmae.data.moving_digits.dataset import MovingDigits
from mmmae.data.moving_digits.modalities.audio import pitch, render_audio

RIGHT, UP = 0, 2  # direction classes


@pytest.fixture(scope="module")
def event():
    """A 1 s clip (8 frames at 8 fps) of a mid-speed digit moving up (no Doppler shift)."""
    base = MovingDigits(frames=8, fps=8.0).event(0)
    return dataclasses.replace(base, direction=UP, speed=1.0, label=0, color=(0.8, 0.8, 0.8))


def peak_hz(wave: np.ndarray, sample_rate: int = 16000) -> float:
    """Frequency of the largest FFT magnitude, refined to a tenth of a bin by zero padding."""
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave)), n=10 * len(wave)))
    return float(np.argmax(spectrum) * sample_rate / (10 * len(wave)))


def test_shape_dtype_range_and_determinism(event):
    wave = render_audio(event, frames=8, sample_rate=16000)
    assert wave.shape == (16000,) and wave.dtype == np.float32
    assert -1.0 <= wave.min() and wave.max() <= 1.0 and wave.std() > 0.05
    np.testing.assert_array_equal(wave, render_audio(event, frames=8, sample_rate=16000))
    assert render_audio(event, frames=4, sample_rate=8000).shape == (4000,)
    other_noise = render_audio(dataclasses.replace(event, noise_seed=event.noise_seed + 1), frames=8)
    assert not np.array_equal(wave, other_noise)
    assert np.abs(wave - other_noise).max() < 0.1  # only the faint noise differs


def test_pitch_set_by_class_and_well_separated(event):
    peaks = [peak_hz(render_audio(dataclasses.replace(event, label=label), frames=8)) for label in range(10)]
    np.testing.assert_allclose(peaks, [pitch(label) for label in range(10)], atol=1.0)
    assert 200 <= min(peaks) and max(peaks) <= 2000
    assert (np.diff(peaks) / peaks[:-1] > 0.2).all()


def test_doppler_sign_follows_horizontal_direction(event):
    fast = dataclasses.replace(event, speed=2.0)
    right, up, left = (peak_hz(render_audio(dataclasses.replace(fast, direction=d), frames=8)) for d in (0, 2, 4))
    # approaching the listener on the right raises the pitch, receding lowers it (~4 % here)
    assert right > up + 4 and left < up - 4
    assert up == pytest.approx(pitch(0), abs=1.0)


def test_louder_when_faster(event):
    quiet, loud = (render_audio(dataclasses.replace(event, speed=speed), frames=8) for speed in (0.5, 2.0))
    assert np.sqrt(np.mean(loud**2)) > 1.5 * np.sqrt(np.mean(quiet**2))


def test_envelope_follows_surge(event):
    wave = render_audio(dataclasses.replace(event, surge=0.5), frames=8)
    rms = np.sqrt(np.mean(wave.reshape(8, -1) ** 2, axis=1))  # per 125 ms
    assert rms[0] > 1.5 * rms[4]  # fastest at t = 0, slowest half a period later
    assert rms[7] > rms[4]


def test_colour_shapes_timbre(event):
    def overtone_ratio(color):
        wave = render_audio(dataclasses.replace(event, color=color), frames=8)
        spectrum = np.abs(np.fft.rfft(wave))  # 1 Hz bins
        return spectrum[round(2 * pitch(0))] / spectrum[round(pitch(0))]

    assert overtone_ratio((0.99, 0.6, 0.6)) > 0.4 and overtone_ratio((0.6, 0.6, 0.6)) < 0.05


def test_reaching_the_speed_of_sound_raises(event):
    with pytest.raises(ValueError, match="speed of sound"):
        render_audio(dataclasses.replace(event, direction=RIGHT, speed=100.0), frames=8)
