"""MovingDigits: the built-in synthetic multimodal dataset, a gin-configurable torch Dataset.

Sample i is one :class:`~mmmae.data.moving_digits.events.DigitEvent` (events.py) rendered into
every requested modality by the renderers registered in modality_renderers.py (one module per
modality under modalities/); see :class:`MovingDigits`.
"""

from __future__ import annotations

import numbers
import operator
from collections.abc import Mapping, Sequence
from types import MappingProxyType

import gin
import numpy as np
import torch

from mmmae.data.moving_digits.events import SPLITS, DigitEvent, check_split, sample_event, split_image_indices
from mmmae.data.moving_digits.modalities.imu import DEFAULT_IMU_RATES, imu_lengths
from mmmae.data.moving_digits.modalities.text import speed_class
from mmmae.data.moving_digits.modalities.video import render_video
from mmmae.data.moving_digits.modality_renderers import RENDERERS, Scene, modality_names
from mmmae.tokenizers.text import load_text_tokenizer

MODALITIES = modality_names()  # ("video", "audio", "imu", "text")


@gin.configurable(module="mmmae")
class MovingDigits(torch.utils.data.Dataset):
    """Short clips of handwritten digits moving over a textured background, generated on the fly,
    with synchronised audio, IMU and captions rendered from the same :class:`DigitEvent`.

    Sample ``i`` is drawn from ``np.random.SeedSequence([seed, split_id, i])``, so it is
    bit-identical across calls, dataset objects and DataLoader workers. The splits use disjoint
    digit images (:func:`split_image_indices`). A sample is a dict; always:
      label () int64 digit class 0..9; direction () int64 class 0..NUM_DIRECTIONS-1 (0 right,
      counter-clockwise on screen, y down); speed () float32 mean speed in pixels per frame;
      speed_class () int64 0..speed_classes-1, the speed in ``speed_classes`` equal-width bins of
      [min_speed, max_speed] (:func:`speed_class`; 3 bins are the caption's slowly / steadily / quickly);
      flow (2, T, H, W) float32 forward flow (dx, dy) in pixels on the digit, 0 on the background;
      digit_mask (T, H, W) bool; position (T, 2) float32 top-left (x, y); index () int64
      (see :func:`render_video` for flow and position);
    and per requested modality m (``modalities``, from MODALITIES), plus ``{m}_present`` () bool:
      video (C, T, H, W) float32 in [0, 1];
      audio (S,) float32 waveform in [-1, 1], S = round(sample_rate * frames / fps) (:func:`render_audio`);
      imu {sensor: (T_d, 6) float32}, T_d = imu_rates[sensor] * frames / fps (:func:`render_imu`;
        ``imu_noise`` is the noise std relative to each sensor's signal RMS);
      text (text_length,) int64 token ids of ``caption`` (str, :func:`caption`), padded with the pad id.
    ``missing[m]`` is the probability that a sample lacks modality m, drawn per sample from its own
    stream of the same seed: then m's value is zeros of the usual shape (text: all pad ids and
    caption ""), and ``{m}_present`` is False. Side channels (flow, digit_mask, position, label,
    direction, speed, speed_class) are always given. fps sets the clip's duration (frames / fps seconds);
    ``surge``, ``surge_cycles`` and ``sway`` (amplitude in radians) set the kinematics
    (:func:`sample_event`); ``render_sway`` turns the digit by its sway in the video too (the
    flow then includes the turn). ``classes`` restricts the digit classes drawn (e.g. [0, 1, 2, 3, 4]
    for pretraining, the others held out for few-shot evaluation); None draws all ten.
    """

    def __init__(
        self,
        split: str = "train",
        num_samples: int = 4096,
        frames: int = 8,
        size: int = 32,
        digit_size: int = 12,
        channels: int = 3,
        min_speed: float = 0.5,
        max_speed: float = 2.0,
        seed: int = 0,
        fps: float = 8.0,
        surge: float = 0.25,
        surge_cycles: float = 1.0,
        sway: float = 0.2,
        modalities: Sequence[str] = ("video",),
        missing: Mapping[str, float] = MappingProxyType({}),
        sample_rate: int = 16000,
        imu_rates: Mapping[str, float] = DEFAULT_IMU_RATES,
        imu_noise: float = 0.02,
        text_length: int = 48,
        text_tokenizer_path: str | None = None,
        render_sway: bool = False,
        speed_classes: int = 3,
        classes: Sequence[int] | None = None,
    ):
        check_split(split)
        counts = dict(
            num_samples=num_samples,
            speed_classes=speed_classes,
            frames=frames,
            digit_size=digit_size,
            channels=channels,
            sample_rate=sample_rate,
            text_length=text_length,
        )
        for name, value in counts.items():
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if not isinstance(speed_classes, numbers.Integral) or isinstance(speed_classes, bool):
            raise ValueError(f"speed_classes must be a whole number of classes, got {speed_classes!r}")
        if size < digit_size:
            raise ValueError(f"size ({size}) must be >= digit_size ({digit_size}) so the digit fits in the frame")
        if not 0 < min_speed <= max_speed < float("inf"):
            raise ValueError(f"need 0 < min_speed <= max_speed < inf, got min_speed={min_speed}, max_speed={max_speed}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        if not (fps > 0 and 0 <= surge < 1 and surge_cycles > 0 and sway >= 0 and imu_noise >= 0):
            raise ValueError(
                f"need fps > 0, 0 <= surge < 1, surge_cycles > 0, sway >= 0, imu_noise >= 0; got {fps=}, {surge=}, "
                f"{surge_cycles=}, {sway=}, {imu_noise=}"
            )
        self.modalities = (modalities,) if isinstance(modalities, str) else tuple(modalities)
        unknown = [m for m in self.modalities if m not in MODALITIES]
        if unknown or not self.modalities or len(set(self.modalities)) < len(self.modalities):
            raise ValueError(f"modalities must be distinct names from {MODALITIES}, got {self.modalities}")
        for modality, probability in missing.items():
            if modality not in self.modalities or not 0 <= probability <= 1:
                raise ValueError(
                    f"missing[{modality!r}] = {probability}: need one of the requested modalities "
                    f"{self.modalities} and 0 <= p <= 1"
                )
        self.split, self.num_samples, self.seed = split, num_samples, seed
        self.frames, self.size, self.digit_size, self.channels = frames, size, digit_size, channels
        self.min_speed, self.max_speed = min_speed, max_speed
        self.fps, self.surge, self.surge_cycles, self.sway = fps, surge, surge_cycles, sway
        self.missing = dict(missing)
        self.sample_rate, self.imu_rates, self.imu_noise = sample_rate, dict(imu_rates), imu_noise
        self.text_length = text_length
        self.render_sway = render_sway
        self.speed_classes = speed_classes
        self.classes = None if classes is None else tuple(int(c) for c in classes)
        if self.classes is not None and (not self.classes or len(set(self.classes)) < len(self.classes)
                                         or not set(self.classes) <= set(range(10))):
            raise ValueError(f"MovingDigits.classes = {list(classes)}: need distinct digit classes from 0..9, "
                             "e.g. [0, 1, 2, 3, 4] (or None for all ten)")
        self.imu_lengths = imu_lengths(self.imu_rates, frames / fps) if "imu" in self.modalities else {}
        self.tokenizer = load_text_tokenizer(text_tokenizer_path) if "text" in self.modalities else None
        split_image_indices(split)  # load the digits now, so forked DataLoader workers inherit them

    def __len__(self) -> int:
        return self.num_samples

    def _seed(self, index: int, spawn_key: tuple[int, ...] = ()) -> np.random.SeedSequence:
        index = operator.index(index)
        if not 0 <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for MovingDigits of length {self.num_samples}")
        return np.random.SeedSequence([self.seed, SPLITS.index(self.split), index], spawn_key=spawn_key)

    def event(self, index: int) -> DigitEvent:
        """The latent event of sample ``index`` (what every modality of that sample is rendered from)."""
        return sample_event(
            np.random.default_rng(self._seed(index)),
            self.split,
            frames=self.frames,
            size=self.size,
            digit_size=self.digit_size,
            channels=self.channels,
            min_speed=self.min_speed,
            max_speed=self.max_speed,
            fps=self.fps,
            surge=self.surge,
            surge_cycles=self.surge_cycles,
            sway=self.sway,
            classes=self.classes,
        )

    def presence(self, index: int) -> dict[str, bool]:
        """Whether sample ``index`` has each requested modality (one uniform draw per name in MODALITIES)."""
        draws = dict(zip(MODALITIES, np.random.default_rng(self._seed(index, (1,))).random(len(MODALITIES))))
        return {m: bool(draws[m] >= self.missing.get(m, 0.0)) for m in self.modalities}

    def __getitem__(self, index: int) -> dict:
        event = self.event(index)
        rendered = render_video(event, frames=self.frames, size=self.size, digit_size=self.digit_size,
                                render_sway=self.render_sway)
        scene = Scene(event, torch.from_numpy(rendered.pop("video")))
        sample = {key: torch.from_numpy(value) for key, value in rendered.items()}
        for modality, present in self.presence(index).items():
            renderer = RENDERERS[modality]
            sample.update(renderer.render(scene, self) if present else renderer.blank(self))
            sample[f"{modality}_present"] = torch.tensor(present)
        sample["label"] = torch.tensor(event.label, dtype=torch.int64)
        sample["direction"] = torch.tensor(event.direction, dtype=torch.int64)
        sample["speed"] = torch.tensor(event.speed, dtype=torch.float32)
        sample["speed_class"] = torch.tensor(speed_class(event.speed, self.min_speed, self.max_speed,
                                                         self.speed_classes), dtype=torch.int64)
        sample["index"] = torch.tensor(operator.index(index), dtype=torch.int64)
        return sample
