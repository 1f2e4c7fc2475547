"""Audio of a MovingDigits event: the digit hums, heard by a listener at the screen's right edge.

The tone's pitch is the digit class, its timbre the digit colour, its loudness the speed (so
its envelope follows the surge), and a Doppler glide the horizontal velocity: a digit moving
right approaches the listener and sounds higher, one moving left sounds lower.
"""

from __future__ import annotations

import numpy as np
import torch

from mmmae.data.moving_digits.events import DigitEvent
from mmmae.data.moving_digits.modality_renderers import ModalityRenderer, RenderSettings, Scene, register_renderer

BASE_PITCH_HZ = 220.0  # class c hums at 220 * 2^(c / 3) Hz: 220 .. 1760 Hz, classes 26 % apart
SOUND_SPEED = 4.0  # m/s: a slowed virtual speed of sound, so the Doppler glide of cm/s motion is audible
HALF_LOUDNESS_SPEED = 0.1  # m/s: the speed heard at half the full amplitude
OVERTONE_GAIN = 0.5  # overtone k + 1 has weight OVERTONE_GAIN * tint[k], the fundamental 1
NOISE_STD = 0.01


def pitch(label: int) -> float:
    """Fundamental frequency in Hz of digit class ``label`` (no Doppler shift)."""
    return BASE_PITCH_HZ * 2.0 ** (label / 3)


def render_audio(event: DigitEvent, *, frames: int, sample_rate: int = 16000) -> np.ndarray:
    """Mono waveform (S,) float32 in [-1, 1], S = round(sample_rate * frames / fps) samples.

    Instantaneous frequency ``pitch(label) * SOUND_SPEED / (SOUND_SPEED - v_x(t))`` (v_x the
    velocity towards the listener on the right, m/s); overtones 2 .. C + 1 weighted by the
    event's tint (those at or above Nyquist dropped); amplitude ``v / (v + 0.1 m/s)`` for the
    instantaneous speed v; plus Gaussian noise of std 0.01 seeded by the event's noise_seed.
    """
    t = np.arange(round(sample_rate * frames / event.fps), dtype=np.float32) / sample_rate  # float32: fast
    vx, vy = event.motion(t).velocity.T  # (S,) each, m/s
    if np.abs(vx).max(initial=0.0) >= SOUND_SPEED:
        raise ValueError(f"render_audio: the digit reaches the virtual speed of sound ({SOUND_SPEED} m/s)")
    frequency = pitch(event.label) * SOUND_SPEED / (SOUND_SPEED - vx)  # (S,) Hz
    cycles = np.cumsum(frequency, dtype=np.float64) / sample_rate
    cycles = (cycles - np.floor(cycles)).astype(np.float32)  # wrapped, so float32 (fast sin) stays exact
    harmonics = np.arange(1, len(event.color) + 2, dtype=np.float32)
    weights = np.concatenate([[1.0], OVERTONE_GAIN * event.tint])
    weights = np.where(harmonics * frequency.max(initial=0.0) < sample_rate / 2, weights, 0.0).astype(np.float32)
    tone = weights @ np.sin(2 * np.pi * harmonics[:, None] * cycles) / weights.sum()
    speed = np.hypot(vx, vy)
    noise = np.random.default_rng([event.noise_seed, 0]).standard_normal(len(t), dtype=np.float32)
    return np.clip(speed / (speed + HALF_LOUDNESS_SPEED) * tone + NOISE_STD * noise, -1.0, 1.0).astype(np.float32)


def _render(scene: Scene, settings: RenderSettings) -> dict[str, torch.Tensor]:
    audio = render_audio(scene.event, frames=settings.frames, sample_rate=settings.sample_rate)
    return {"audio": torch.from_numpy(audio)}


def _blank(settings: RenderSettings) -> dict[str, torch.Tensor]:
    """Zeros (S,)."""
    return {"audio": torch.zeros(round(settings.sample_rate * settings.frames / settings.fps))}


register_renderer("audio", ModalityRenderer(order=1, render=_render, blank=_blank))
