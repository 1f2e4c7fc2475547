"""Clips from media files: a layout's rows (video, audio, imu, caption, label, start, end) ->
samples with the same keys as MovingDigits', every modality cut to the same time span. The video
(or, without it, the IMU log) times the clip; every other modality is read over that span by the
reader registered for it (modality_readers.py, one module per modality under modalities/)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

import datasets
import einops
import gin
import numpy as np
import torch
from torch.utils.data import default_collate

from mmmae.data.media.clip_sampling import DenseSampling
from mmmae.data.media.errors import MediaError, source_name
from mmmae.data.media.imu_devices import device_map
from mmmae.data.media.modalities.imu import read_device_log
from mmmae.data.media.modality_readers import READERS, ClipSpan, reader_names
from mmmae.data.media.video_reader import read_frames
from mmmae.data.transforms import VideoTransform
from mmmae.tokenizers.text import load_text_tokenizer

logger = logging.getLogger(__name__)

MEDIA_MODALITIES = ("video", *reader_names())  # ("video", "audio", "imu", "text")
ON_ERROR = ("skip", "fail")
MAX_DRAWS = 1000  # random rows tried in turn to replace an unreadable one in training


@gin.configurable(module="mmmae")
class MediaDataset(torch.utils.data.Dataset):
    """Samples read from the files a layout lists (mmmae.data.media.layouts).

    Per row: the sampling picks T frames and their span [start, end) (seconds on the video's
    time base; inside the row's start/end when given); audio and IMU are cut to
    [start, start + span) with span = ``span_seconds`` or, if None, the clip's own span (then
    every video must have the same frame rate, so that shapes agree). Without video, an IMU log
    sets the time: a span_seconds window at a random time (train) or centred (train=False)
    within what every device of the log covers. Keys, as MovingDigits:
      video (C, T, H, W) float in [0, 1] (after ``transform``), audio (S,) float32 waveform at
      ``sample_rate``, imu {device: (rate * span, C)} at ``imu_rates``, text (text_length,) ids
      and caption (str), ``<m>_present`` bool (False, with zeros, where the row has no such file),
      label () int64 (-1 without labels), index () int64 (the row), bad_samples () int64.
    IMU devices are the model's: ``imu_rates`` defaults to its imu/IMUGraphTokenizer.sample_rates,
    ``imu_devices`` {model device: log device} reads logs that name them otherwise
    (mmmae.data.media.imu_devices). ``max_gap``: the longest interval allowed between a device's samples
    anywhere in its log (None: the reader judges each device by its own sampling period).
    Audio from the video file itself (the row's audio is its video) is absent, not an error,
    where the file has no audio track. ``audio_channels`` picks channels by position or FFmpeg
    name (e.g. ['FL', 'FR']); None downmixes (5.1 with the ITU-R BS.775 coefficients, LFE out).
    Shapes: every sample must have the shapes of the reference, the clip of the dataset's first
    readable row in row order (:meth:`reference`). With span_seconds set, audio and IMU lengths
    follow from it (round(rate * span_seconds)); with None, from the reference clip's span, i.e.
    the sampling at the first readable video's frame rate. :meth:`read` raises MediaError naming
    the file and the fix for a clip that differs (a frame rate that changes the span while
    span_seconds is None, frames of another size that no crop evens out, an IMU log with other
    channels).
    A row that cannot be read (MediaError: missing, truncated or corrupt file, a bad IMU log,
    other shapes) is, under on_error='skip', logged with its path and reason. Training
    (train=True) replaces it by a row drawn uniformly at random by an RNG seeded from (seed,
    epoch, index, attempt), so no readable row gains weight, and marks that sample
    bad_samples = 1 (0 otherwise): each unreadable row counts once per epoch (the trainer sums
    it). Evaluation (train=False) returns None for it; ``collate`` leaves it out and counts it
    in ``left_out``. on_error='fail' raises.
    Randomness: sample ``index`` draws from SeedSequence([seed, epoch, index]) (train; the
    trainer calls ``set_epoch``, which reaches DataLoader workers) or [seed, index]
    (train=False: the same clip every time), never from a global RNG, so a resumed run reads
    the very clips an uninterrupted one does.
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
        audio_channels: Sequence[int | str] | None = None,
        imu_rates: Mapping[str, float] | None = None,
        imu_channels: Sequence[str] | None = None,
        imu_devices: Mapping[str, str] | None = None,
        mirror_channels: Sequence[int] = (),
        max_gap: float | None = None,
        text_length: int = 48,
        text_tokenizer_path: str | None = None,
        on_error: str = "skip",
        clips_per_video: int = 1,
        seed: int = 0,
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
        if seed < 0:
            raise ValueError(f"MediaDataset.seed must be >= 0, got {seed}")
        if "video" not in self.modalities and span_seconds is None:
            raise ValueError("MediaDataset without video needs span_seconds (the video's clip sets it otherwise)")
        self.imu_map = device_map(imu_devices, imu_rates, imu_channels) if "imu" in self.modalities else None
        self.rows = source if isinstance(source, (datasets.Dataset, datasets.IterableDataset)) else source()
        self.sampling, self.transform = sampling, transform or VideoTransform([])
        self.span_seconds, self.sample_rate, self.audio_channels = span_seconds, sample_rate, audio_channels
        self.imu_rates, self.imu_channels = (self.imu_map.rates if self.imu_map else {}), imu_channels
        self.mirror_channels, self.max_gap = list(mirror_channels), max_gap
        self.text_length = text_length
        self.tokenizer = load_text_tokenizer(text_tokenizer_path) if "text" in self.modalities else None
        self.on_error, self.clips_per_video, self.train, self.backend = on_error, clips_per_video, train, backend
        self.seed = seed
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()  # forked/spawned workers see set_epoch
        self._reference: dict | None = None

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        """The epoch training seeds derive from; shared with the DataLoader workers, persistent ones too."""
        self._epoch.fill_(epoch)

    def seed_of(self, index: int, attempt: int = 0) -> np.random.SeedSequence:
        """Seeds of sample ``index``: (seed, epoch, index, attempt) in training (attempt k > 0: the
        k-th draw replacing an unreadable row), (seed, index) with train=False."""
        return np.random.SeedSequence([self.seed, self.epoch, index, attempt] if self.train else [self.seed, index])

    def __getitem__(self, index: int) -> dict | list[dict] | None:
        clips = self.read_or_report(self.rows[index], index)
        if clips is not None:
            return self.sample(clips, 0)
        return self.sample(self.replacement(index), 1) if self.train else None

    def replacement(self, index: int) -> list[dict]:
        """The clips of a readable row drawn uniformly at random to stand in for unreadable row
        ``index``: draw k picks its row and seeds its clips from seed_of(index, k); unreadable
        draws are drawn again, uncounted and unlogged (their own index reports them)."""
        for attempt in range(1, MAX_DRAWS + 1):
            pick, seed = self.seed_of(index, attempt).spawn(2)
            row_index = int(np.random.default_rng(pick).integers(len(self.rows)))
            try:
                return self.read(self.rows[row_index], row_index, seed)
            except MediaError:
                continue
        raise MediaError(f"{len(self.rows)} rows", f"no readable row in {MAX_DRAWS} random draws: the warnings "
                                                   "above name the unreadable files and why")

    def sample(self, clips: list[dict], bad: int) -> dict | list[dict]:
        """What the dataset yields for one row: its clip (a list of them if clips_per_video > 1);
        the first clip carries ``bad`` (the unreadable rows it stands in for) in bad_samples, the others 0."""
        for k, clip in enumerate(clips):
            clip["bad_samples"] = torch.tensor(bad if k == 0 else 0)
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

    def read(self, row: dict, row_index: int, seed: np.random.SeedSequence | None = None) -> list[dict]:
        """clips_per_video clips of a row, seeded by ``seed`` (default :meth:`seed_of` row_index).
        MediaError if any of its files cannot be read or a clip's shapes differ from the reference's."""
        clips = self._clips(row, row_index, self.seed_of(row_index) if seed is None else seed)
        reference = self.reference()
        for clip, span in clips:
            check_shapes(clip, span, row, reference, self.span_seconds)
        return [clip for clip, _ in clips]

    def reference(self) -> dict:
        """{"shapes": {key: shape}, "span": seconds, "source": name}: the clip of the first readable
        row in row order (seeded by (seed, row)), which every sample must match; read once per process."""
        if self._reference is None:
            for row_index, row in enumerate(self.rows):
                try:
                    clip, span = self._clips(row, row_index, np.random.SeedSequence([self.seed, row_index]))[0]
                except MediaError:
                    continue
                self._reference = {"shapes": tensor_shapes(clip), "span": span, "source": source_name(row["video"])
                                   if row.get("video") is not None else f"row {row_index}"}
                break
            else:
                raise MediaError(f"{len(self.rows)} rows", "no row of the dataset could be read: the warnings "
                                                           "above name the files and why")
        return self._reference

    def _clips(self, row: dict, row_index: int, seed: np.random.SeedSequence) -> list[tuple[dict, float]]:
        """clips_per_video (clip, span in seconds) of a row: one sampling RNG, a transform generator per clip."""
        clip_seed, *transform_seeds = seed.generate_state(1 + self.clips_per_video, np.uint64)
        rng = np.random.default_rng(int(clip_seed))
        return [self._clip(row, row_index, rng, torch.Generator().manual_seed(int(s) >> 1)) for s in transform_seeds]

    def _clip(self, row: dict, row_index: int, rng: np.random.Generator,
              generator: torch.Generator) -> tuple[dict, float]:
        window = (row["start"], row["end"]) if row.get("start") is not None else None
        sample: dict = {}
        flipped = False
        if "video" in self.modalities:
            frames, selection = read_frames(row["video"], self.sampling, rng, window=window, backend=self.backend)
            sample["video"], done = self.transform(einops.rearrange(frames, "t h w c -> t c h w"), generator)
            flipped = bool(done.get("flipped", False))
            sample["video_present"] = torch.tensor(True)
            start, span = selection.start, self.span_seconds or selection.end - selection.start
        elif "imu" in self.modalities and row.get("imu") is not None:
            start, span = self._imu_start(row, window, rng), self.span_seconds
        else:
            start, span = (window or (0.0, None))[0], self.span_seconds
        clip = ClipSpan(start, span, flipped)
        for modality in (m for m in self.modalities if m != "video"):
            reader = READERS[modality]
            values = reader.read(row, clip, self) if row.get(reader.column) else None
            sample.update(reader.blank(span, self) if values is None else values)
            sample[f"{modality}_present"] = torch.tensor(values is not None)
        sample["label"] = torch.tensor(-1 if row.get("label") is None else int(row["label"]), dtype=torch.int64)
        sample["index"] = torch.tensor(row_index, dtype=torch.int64)
        return sample, span

    def _imu_start(self, row: dict, window: tuple[float, float] | None, rng: np.random.Generator) -> float:
        """Start of a clip timed by its IMU log (no video): uniform (train) or centred (train=False)
        among the starts whose span_seconds lies within every device's samples and the row's window."""
        log = read_device_log(row, self)
        low, high = max(times[0] for times, _ in log.values()), min(times[-1] for times, _ in log.values())
        if window is not None:
            low, high = max(low, window[0]), min(high, window[1])
        room = high - low - self.span_seconds
        if room < 0:
            raise MediaError(row["imu"], f"the IMU log covers {max(high - low, 0):g} s ({low:g} to {high:g} s) in "
                                         f"every device, less than MediaDataset.span_seconds = {self.span_seconds:g}")
        return low + (rng.uniform(0.0, room) if self.train else room / 2)

    def collate(self, samples: list) -> dict:
        """default_collate, flattening repeated clips (clips_per_video > 1) into one batch of B * k.
        With train=False, the None of unreadable rows are left out and counted: left_out () int64;
        a batch with no sample left is {"left_out": n} only."""
        kept = [sample for sample in samples if sample is not None]
        flat = [clip for sample in kept for clip in (sample if isinstance(sample, list) else [sample])]
        if self.train:
            return default_collate(flat)
        left_out = torch.tensor(len(samples) - len(kept), dtype=torch.int64)
        return {**default_collate(flat), "left_out": left_out} if flat else {"left_out": left_out}


def tensor_shapes(sample: dict) -> dict[str, tuple[int, ...]]:
    """{key: shape} of a sample's tensors; an IMU device's as "imu/<device>"."""
    shapes = {}
    for key, value in sample.items():
        if isinstance(value, dict):
            shapes.update({f"{key}/{name}": tuple(tensor.shape) for name, tensor in value.items()})
        elif isinstance(value, torch.Tensor):
            shapes[key] = tuple(value.shape)
    return shapes


def check_shapes(sample: dict, span: float, row: dict, reference: dict, span_seconds: float | None) -> None:
    """MediaError naming the file and the fix where a clip (spanning ``span`` s) has other shapes
    than the reference (:meth:`MediaDataset.reference`), which training could not batch."""
    for key, shape in tensor_shapes(sample).items():
        expected = reference["shapes"].get(key, shape)
        if shape == expected:
            continue
        column = key.split("/")[0]
        differs = (f"{key} has shape {shape}, the dataset's samples {expected} (set by its first readable row, "
                   f"{reference['source']})")
        if column == "video":
            raise MediaError(row["video"], f"{differs}: give MediaDataset.transform a crop to one frame size")
        if span_seconds is None and shape[0] != expected[0]:
            raise MediaError(row["video"], f"{differs}: this clip spans {span:.4g} s, theirs {reference['span']:.4g} s "
                                           "(another frame rate); set MediaDataset.span_seconds so that every "
                                           "clip's audio and IMU cover the same time")
        fix = ": name the channels to use in MediaDataset.imu_channels" if column == "imu" else ""
        raise MediaError(row.get(column) or row["video"], f"{differs}{fix}")

