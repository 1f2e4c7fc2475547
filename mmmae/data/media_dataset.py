"""Clips from media files: a layout's rows (video, audio, imu, caption, label, start, end) ->
samples with the same keys as MovingDigits', every modality cut to the same time span."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

import datasets
import einops
import gin
import numpy as np
import torch
from torch.utils.data import default_collate

from mmmae.data.audio_reader import read_audio
from mmmae.data.clip_sampling import DenseSampling
from mmmae.data.imu_reader import read_imu_log, resample_imu
from mmmae.data.media_errors import MediaError, source_name
from mmmae.data.transforms import VideoTransform
from mmmae.data.video_reader import read_frames
from mmmae.tokenizers.text import encode_captions, load_text_tokenizer

logger = logging.getLogger(__name__)

MEDIA_MODALITIES = ("video", "audio", "imu", "text")
ON_ERROR = ("skip", "fail")


@gin.configurable(module="mmmae")
class MediaDataset(torch.utils.data.Dataset):
    """Samples read from the files a layout lists (mmmae.data.layouts).

    Per row: the sampling picks T frames and their span [start, end) (seconds on the video's
    time base; inside the row's start/end when given); audio and IMU are cut to
    [start, start + span) with span = ``span_seconds`` or, if None, the clip's own span (then
    every video must have the same frame rate, so that shapes agree). Keys, as MovingDigits:
      video (C, T, H, W) float in [0, 1] (after ``transform``), audio (S,) float32 waveform at
      ``sample_rate``, imu {device: (rate * span, C)} at ``imu_rates``, text (text_length,) ids
      and caption (str), ``<m>_present`` bool (False, with zeros, where the row has no such file),
      label () int64 (-1 without labels), index () int64 (the row), bad_samples () int64.
    A row that cannot be read (MediaError: missing, truncated or corrupt file, a bad IMU log)
    is, under on_error='skip', logged with its path and reason and replaced by the next
    readable row; bad_samples counts the rows skipped for this sample (the trainer sums it).
    on_error='fail' raises. train=False samples centred clips, the same every time.
    clips_per_video k > 1 (repeated augmentation): a sample is a list of k clips of one video,
    each with its own span and augmentation; ``collate`` flattens them into a batch of B * k.
    """

    def __init__(
        self,
        source: datasets.Dataset | Callable[[], datasets.Dataset] = gin.REQUIRED,
        modalities: Sequence[str] = ("video",),
        sampling: Callable = DenseSampling(),
        transform: Callable[..., tuple[torch.Tensor, dict]] | None = None,
        span_seconds: float | None = None,
        sample_rate: int = 16000,
        imu_rates: Mapping[str, float] | None = None,
        imu_channels: Sequence[str] | None = None,
        mirror_channels: Sequence[int] = (),
        max_gap: float = 0.1,
        text_length: int = 48,
        text_tokenizer_path: str | None = None,
        on_error: str = "skip",
        clips_per_video: int = 1,
        train: bool = True,
        backend: str = "pyav",
    ):
        self.modalities = tuple(modalities)
        unknown = [m for m in self.modalities if m not in MEDIA_MODALITIES]
        if unknown or not self.modalities:
            raise ValueError(f"MediaDataset.modalities must be names from {MEDIA_MODALITIES}, got {self.modalities}")
        if on_error not in ON_ERROR:
            raise ValueError(f"MediaDataset.on_error must be one of {ON_ERROR}, got {on_error!r}")
        if clips_per_video < 1:
            raise ValueError(f"MediaDataset.clips_per_video must be >= 1, got {clips_per_video}")
        if "imu" in self.modalities and not imu_rates:
            raise ValueError("MediaDataset.imu_rates must give each IMU device's rate in Hz ({device: Hz})")
        if "video" not in self.modalities and span_seconds is None:
            raise ValueError("MediaDataset without video needs span_seconds (the video's clip sets it otherwise)")
        self.rows = source if isinstance(source, (datasets.Dataset, datasets.IterableDataset)) else source()
        self.sampling, self.transform = sampling, transform or VideoTransform([])
        self.span_seconds, self.sample_rate = span_seconds, sample_rate
        self.imu_rates, self.imu_channels = dict(imu_rates or {}), imu_channels
        self.mirror_channels, self.max_gap = list(mirror_channels), max_gap
        self.text_length = text_length
        self.tokenizer = load_text_tokenizer(text_tokenizer_path) if "text" in self.modalities else None
        self.on_error, self.clips_per_video, self.train, self.backend = on_error, clips_per_video, train, backend

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict | list[dict]:
        for skipped in range(len(self.rows)):
            row_index = (index + skipped) % len(self.rows)
            clips = self.read_or_report(self.rows[row_index], row_index)
            if clips is not None:
                return self.sample(clips, skipped)
        raise MediaError(f"{len(self.rows)} rows", "no row of the dataset could be read")

    def sample(self, clips: list[dict], skipped: int) -> dict | list[dict]:
        """What the dataset yields for one row: its clip (a list of them if clips_per_video > 1),
        each counting the `skipped` unreadable rows it replaces."""
        for clip in clips:
            clip["bad_samples"] = torch.tensor(skipped)
        return clips[0] if self.clips_per_video == 1 else clips

    def read_or_report(self, row: dict, row_index: int) -> list[dict] | None:
        """:meth:`read`, or None after logging why the row cannot be read (on_error='skip')."""
        try:
            return self.read(row, row_index)
        except MediaError as error:
            if self.on_error == "fail":
                raise
            where = row.get("shard_member") or error.path  # a streamed row's media are bytes: name its shard
            logger.warning("skipping sample %d (%s): %s", row_index, where, error.reason)
            return None

    def read(self, row: dict, row_index: int) -> list[dict]:
        """clips_per_video samples of a row; MediaError if any of its files cannot be read."""
        seed = int(torch.randint(2**62, ())) if self.train else row_index
        rng = np.random.default_rng(seed)
        return [self._clip(row, row_index, rng, torch.Generator().manual_seed(seed + k))
                for k in range(self.clips_per_video)]

    def _clip(self, row: dict, row_index: int, rng: np.random.Generator, generator: torch.Generator) -> dict:
        window = (row["start"], row["end"]) if row.get("start") is not None else None
        sample: dict = {}
        flipped = False
        if "video" in self.modalities:
            frames, selection = read_frames(row["video"], self.sampling, rng, window=window, backend=self.backend)
            sample["video"], done = self.transform(einops.rearrange(frames, "t h w c -> t c h w"), generator)
            flipped = bool(done.get("flipped", False))
            start, span = selection.start, self.span_seconds or selection.end - selection.start
        else:
            start, span = (window or (0.0, None))[0], self.span_seconds
        for modality in self.modalities:
            present = modality == "video" or bool(row.get(self._column(modality)))
            sample[f"{modality}_present"] = torch.tensor(present)
            if modality != "video":
                sample.update(self._read_other(modality, row, start, span, flipped) if present
                              else self._blank(modality, span))
        sample["label"] = torch.tensor(-1 if row.get("label") is None else int(row["label"]), dtype=torch.int64)
        sample["index"] = torch.tensor(row_index, dtype=torch.int64)
        return sample

    @staticmethod
    def _column(modality: str) -> str:
        return "caption" if modality == "text" else modality

    def _read_other(self, modality: str, row: dict, start: float, span: float, flipped: bool) -> dict:
        if modality == "audio":
            return {"audio": read_audio(row["audio"], start, start + span, self.sample_rate)}
        if modality == "imu":
            log = read_imu_log(row["imu"], self.imu_channels)
            signals = resample_imu(log, start, start + span, self.imu_rates, max_gap=self.max_gap,
                                   path=source_name(row["imu"]))  # a streamed log is bytes: "<bytes>"
            if flipped and self.mirror_channels:
                signals = {name: _negate(values, self.mirror_channels) for name, values in signals.items()}
            return {"imu": signals}
        text = str(row["caption"])
        return {"caption": text, "text": encode_captions([text], self.tokenizer, self.text_length)[0]}

    def _blank(self, modality: str, span: float) -> dict:
        """A modality the row lacks: zeros of the usual shape (text: pad ids and an empty caption)."""
        if modality == "audio":
            return {"audio": torch.zeros(round(span * self.sample_rate))}
        if modality == "imu":
            channels = len(self.imu_channels) if self.imu_channels else 6
            return {"imu": {name: torch.zeros(round(rate * span), channels) for name, rate in self.imu_rates.items()}}
        return {"caption": "", "text": torch.full((self.text_length,), self.tokenizer.pad_token_id, dtype=torch.int64)}

    def collate(self, samples: list) -> dict:
        """default_collate, flattening repeated clips (clips_per_video > 1) into one batch of B * k."""
        flat = [clip for sample in samples for clip in (sample if isinstance(sample, list) else [sample])]
        return default_collate(flat)


def _negate(values: torch.Tensor, channels: list[int]) -> torch.Tensor:
    """values (N, C) with the given channels negated (a horizontal flip mirrors those axes)."""
    sign = torch.ones(values.shape[-1])
    sign[channels] = -1
    return values * sign
