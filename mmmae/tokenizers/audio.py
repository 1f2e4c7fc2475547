"""Audio spectrogram patches: AudioMAE's Kaldi fbank front-end, then 16x16 patches of the
(time, frequency) image.

Front-end (AudioMAE `dataset.py::_wav2fbank`, also AST and CAV-MAE): the mono waveform is
mean-subtracted and turned into a 128-bin log-mel filterbank by
`torchaudio.compliance.kaldi.fbank` (HTK mel scale, Hann window of 25 ms every 10 ms, no energy
term, no dither), then zero-padded or cropped at the end to a fixed number of frames (1024 for
10 s AudioSet clips, 512 for ESC-50, 128 for SpeechCommands).

Normalisation is `(fbank - mean) / (norm_scale * std)` with dataset statistics. The two
reference codebases differ, and the difference is kept explicit in `FbankNorm.norm_scale`:
AudioMAE divides by two standard deviations (norm_scale=2, AudioSet mean -4.2677393, std
4.5689974); CAV-MAE divides by one (norm_scale=1, AudioSet mean -5.081, std 4.4849).
"""

from collections.abc import Callable, Sequence
from typing import NamedTuple

import gin
import torch
import torchaudio
from einops import rearrange
from torch import nn
from torch.nn.functional import pad

from mmmae.nn.pos_embed import LEARNED
from mmmae.tokenizers.patches import PixelTokenizer, patch_pixels, token_grid
from mmmae.types import Tokens

FRAME_SHIFT_MS = 10.0
FRAME_LENGTH_MS = 25.0


class FbankNorm(NamedTuple):
    """Dataset statistics of the raw fbank: normalised = (fbank - mean) / (norm_scale * std)."""

    mean: float
    std: float
    norm_scale: float


AUDIOMAE_AUDIOSET_NORM = FbankNorm(mean=-4.2677393, std=4.5689974, norm_scale=2.0)
AUDIOMAE_ESC50_NORM = FbankNorm(mean=-6.6268077, std=5.358466, norm_scale=2.0)
AUDIOMAE_SPEECHCOMMANDS_NORM = FbankNorm(mean=-6.845978, std=5.5654526, norm_scale=2.0)
CAV_MAE_AUDIOSET_NORM = FbankNorm(mean=-5.081, std=4.4849, norm_scale=1.0)


def normalize_fbank(
    fbank: torch.Tensor, mean: float | torch.Tensor, std: float | torch.Tensor, norm_scale: float
) -> torch.Tensor:
    """(fbank - mean) / (norm_scale * std), elementwise on any shape."""
    return (fbank - mean) / (norm_scale * std)


def window_samples(sample_rate: int) -> int:
    """Samples in one analysis window: the shortest waveform that gives a frame (400 at 16 kHz)."""
    return int(sample_rate * FRAME_LENGTH_MS / 1000)


def _min_length(sample_rate: int) -> str:
    return f"S >= {window_samples(sample_rate)} (one {FRAME_LENGTH_MS:g} ms window at {sample_rate} Hz)"


def fit_length(fbank: torch.Tensor, target_length: int) -> torch.Tensor:
    """(..., T, F) -> (..., target_length, F): zero frames appended, or frames past the end dropped."""
    return pad(fbank, (0, 0, 0, target_length - fbank.shape[-2]))


def kaldi_fbank(
    waveform: torch.Tensor, sample_rate: int = 16000, num_mel_bins: int = 128, target_length: int = 1024
) -> torch.Tensor:
    """Mono waveform (S,) -> raw (un-normalised) log-mel fbank (target_length, num_mel_bins).

    AudioMAE's constants (module docstring); computed on the waveform's device.
    """
    if waveform.ndim != 1 or waveform.shape[0] < window_samples(sample_rate):
        raise ValueError(
            f"expected a mono waveform (S,) with {_min_length(sample_rate)}, got shape {tuple(waveform.shape)}"
        )
    fbank = torchaudio.compliance.kaldi.fbank(
        (waveform - waveform.mean())[None],
        htk_compat=True,
        sample_frequency=sample_rate,
        use_energy=False,
        window_type="hanning",
        num_mel_bins=num_mel_bins,
        dither=0.0,
        frame_shift=FRAME_SHIFT_MS,
        frame_length=FRAME_LENGTH_MS,
    )
    return fit_length(fbank, target_length)


def batch_fbank(
    waveforms: torch.Tensor, sample_rate: int = 16000, num_mel_bins: int = 128, target_length: int = 1024
) -> torch.Tensor:
    """Waveforms (B, S) -> raw fbanks (B, target_length, num_mel_bins), one `kaldi_fbank` per sample."""
    if waveforms.ndim != 2 or waveforms.shape[1] < window_samples(sample_rate):
        raise ValueError(
            f"expected waveforms (B, S) with {_min_length(sample_rate)}, got shape {tuple(waveforms.shape)}"
        )
    return torch.stack([kaldi_fbank(w, sample_rate, num_mel_bins, target_length) for w in waveforms])


@gin.configurable(module="mmmae")
class AudioTokenizer(PixelTokenizer):
    """Spectrogram patches: (B, S) waveform or raw fbank (B, T, num_mel_bins) -> Tokens.

    The normalised fbank is a 1-channel image (B, 1, T, F), time first; a patch x patch Conv2d
    embeds it into grid (target_length / patch, num_mel_bins / patch) = (T', F'), token index
    t * F' + f (AudioMAE: 1024 x 128 -> 64 x 8 = 512 tokens), plus a fixed 2-D sin-cos table
    (`pos_embed` "separable": half the channels for time, half for frequency; "joint": 1-D over
    the token index), or a learned table ("learned", AudioMAE's stored table) at the reference
    grid `pos_grid` (default: this tokenizer's own grid), resampled bicubically when
    target_length differs (another audio length). Targets (B, N, patch * patch) are the
    normalised spectrogram patches, each standardised over its own values when `norm_target`
    (True: (x - mean) / (unbiased std + 1e-6); 'mae': / sqrt(unbiased var + 1e-6), exactly
    AudioMAE's norm_pix_loss).
    Defaults normalise as AudioMAE on AudioSet; CAV-MAE: mean -5.081, std 4.4849, norm_scale 1.
    `augment` (e.g. ``@SpecAugment()``) changes each raw fbank in training mode only, before
    normalisation, as AudioMAE's fine-tuning does.
    """

    def __init__(
        self,
        dim: int = gin.REQUIRED,
        sample_rate: int = 16000,
        num_mel_bins: int = 128,
        target_length: int = 1024,
        patch: int = 16,
        mean: float = AUDIOMAE_AUDIOSET_NORM.mean,
        std: float = AUDIOMAE_AUDIOSET_NORM.std,
        norm_scale: float = AUDIOMAE_AUDIOSET_NORM.norm_scale,
        norm_target: bool | str = True,
        pos_embed: str = "separable",
        augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
        pos_grid: Sequence[int] | None = None,
    ):
        kernel = (patch, patch)
        grid = token_grid("AudioTokenizer", (target_length, num_mel_bins), kernel, "TF")
        proj = nn.Conv2d(1, dim, kernel_size=patch, stride=patch)
        if pos_grid is None and pos_embed in LEARNED:
            pos_grid = grid
        super().__init__(proj, kernel, pos_embed, norm_target, (mean,), (std,), pos_grid)
        self.norm_scale = norm_scale
        self.grid = grid
        self.sample_rate = sample_rate
        self.num_mel_bins = num_mel_bins
        self.target_length = target_length
        self.augment = augment

    def fbank(self, audio: torch.Tensor) -> torch.Tensor:
        """Waveform (B, S) or raw fbank (B, T, num_mel_bins) -> raw fbank (B, target_length, num_mel_bins)."""
        if audio.ndim == 2:
            return batch_fbank(audio, self.sample_rate, self.num_mel_bins, self.target_length)
        if audio.ndim == 3 and audio.shape[-1] == self.num_mel_bins:
            return fit_length(audio, self.target_length)
        raise ValueError(
            f"AudioTokenizer: expected a waveform (B, S) or a raw fbank (B, T, {self.num_mel_bins}), "
            f"got shape {tuple(audio.shape)}"
        )

    def standardize(self, fbank: torch.Tensor) -> torch.Tensor:
        """Raw fbank, any shape -> (fbank - mean) / (norm_scale * std)."""
        return normalize_fbank(fbank, self.mean, self.std, self.norm_scale)

    def target_source(self, spectrogram: torch.Tensor) -> torch.Tensor:
        """Targets are cut from the normalised spectrogram `forward` passes (every norm_target)."""
        return spectrogram

    def figure_pixels(self, predicted: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
        """Per-patch normalised targets map back onto the figure's rescaled spectrogram as they
        are cut from it (`target_source` is the identity); raw targets are shown as predicted."""
        return patch_pixels(predicted, truth, self.norm_target)

    def figure_image(self, audio: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int], tuple[int, int, int]]:
        """The normalised spectrogram as a one-frame, one-channel clip (B, 1, 1, T, F) scaled to
        [0, 1] per sample (per-patch target normalisation is unaffected by that scaling)."""
        image = rearrange(self.standardize(self.fbank(audio)), "b t f -> b 1 1 t f")
        low = image.amin(dim=(1, 2, 3, 4), keepdim=True)
        high = image.amax(dim=(1, 2, 3, 4), keepdim=True)
        return (image - low) / (high - low).clamp_min(1e-6), (1, *self.kernel), (1, *self.grid)

    def figure_axes(self) -> tuple[float, torch.Tensor]:
        """The spectrogram's axes: seconds per fbank frame, and the centre frequency in Hz of each
        mel bin (num_mel_bins,), as the Kaldi front-end places them (20 Hz to Nyquist)."""
        padded = 1 << (window_samples(self.sample_rate) - 1).bit_length()  # Kaldi's FFT size
        _, centres = torchaudio.compliance.kaldi.get_mel_banks(
            self.num_mel_bins, padded, float(self.sample_rate), 20.0, 0.0, 100.0, -500.0, 1.0)
        return FRAME_SHIFT_MS / 1000, centres.flatten()

    def forward(self, audio: torch.Tensor) -> Tokens:
        fbank = self.fbank(audio)
        if self.training and self.augment is not None:  # per sample, drawn from the global torch RNG
            fbank = torch.stack([self.augment(sample, torch.default_generator) for sample in fbank])
        spectrogram = self.standardize(fbank[:, None])  # (B, 1, T, F)
        embed = rearrange(self.project(spectrogram), "b d t f -> b (t f) d")
        return self.tokens(embed, spectrogram, self.grid, self.kernel)
