"""Audio front-end and tokenizer: fbank against torchaudio, presets, token layout, shape errors."""

import gin
import pytest
import torch
import torchaudio

from mmmae.nn.pos_embed import sincos_pos_embed
from mmmae.tokenizers.audio import (
    AUDIOMAE_AUDIOSET_NORM,
    CAV_MAE_AUDIOSET_NORM,
    AudioTokenizer,
    batch_fbank,
    kaldi_fbank,
    normalize_fbank,
)
from mmmae.tokenizers.patches import patch_targets
from tests.float32_bound import rounding_bound


def waveforms(batch: int = 2, samples: int = 16000, seed: int = 0) -> torch.Tensor:
    """One second of noisy tones with a DC offset, (batch, samples)."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(samples) / 16000
    freqs = 200 + 3000 * torch.rand(batch, 1, generator=g)
    return 0.5 * torch.sin(2 * torch.pi * freqs * t) + 0.05 * torch.randn(batch, samples, generator=g) + 0.2


def torchaudio_reference(waveform: torch.Tensor) -> torch.Tensor:
    """AudioMAE `_wav2fbank` before padding, written out."""
    return torchaudio.compliance.kaldi.fbank(
        (waveform - waveform.mean())[None], htk_compat=True, sample_frequency=16000, use_energy=False,
        window_type="hanning", num_mel_bins=128, dither=0.0, frame_shift=10, frame_length=25,
    )


def small(**kwargs) -> AudioTokenizer:
    """1 s waveforms -> 98 frames, padded to 128: grid (8, 8) of 16x16 patches."""
    torch.manual_seed(0)
    return AudioTokenizer(**{"dim": 16, "target_length": 128, **kwargs})


def test_kaldi_fbank_equals_torchaudio_with_audiomae_constants():
    wave = waveforms(1)[0]
    reference = torchaudio_reference(wave)
    assert reference.shape == (98, 128)
    assert torch.equal(kaldi_fbank(wave, target_length=98), reference)
    # the waveform is mean-subtracted first: a DC offset changes nothing
    assert torch.allclose(kaldi_fbank(wave + 0.7, target_length=98), reference, atol=1e-3)


def test_fbank_is_zero_padded_or_cropped_at_the_end():
    wave = waveforms(1)[0]
    reference = torchaudio_reference(wave)
    padded = kaldi_fbank(wave, target_length=128)
    assert padded.shape == (128, 128)
    assert torch.equal(padded[:98], reference) and not padded[98:].any()
    assert torch.equal(kaldi_fbank(wave, target_length=64), reference[:64])


def test_batch_fbank_is_the_per_sample_fbank():
    waves = waveforms(3)
    batch = batch_fbank(waves, target_length=100)
    assert batch.shape == (3, 100, 128)
    for wave, fbank in zip(waves, batch):
        assert torch.equal(fbank, kaldi_fbank(wave, target_length=100))


def test_normalisation_presets_differ_as_documented():
    fbank = torch.randn(4, 128) * 4 - 5
    audiomae = normalize_fbank(fbank, *AUDIOMAE_AUDIOSET_NORM)
    cav_mae = normalize_fbank(fbank, *CAV_MAE_AUDIOSET_NORM)
    assert torch.allclose(audiomae, (fbank + 4.2677393) / (2 * 4.5689974))
    assert torch.allclose(cav_mae, (fbank + 5.081) / 4.4849)
    assert AUDIOMAE_AUDIOSET_NORM.norm_scale == 2 and CAV_MAE_AUDIOSET_NORM.norm_scale == 1


def test_tokenizer_defaults_normalise_as_audiomae_and_take_cav_mae_settings():
    fbank = torch.randn(1, 128, 128) * 4 - 5
    default = small()
    assert torch.allclose(default.standardize(fbank), normalize_fbank(fbank, *AUDIOMAE_AUDIOSET_NORM))
    cav = small(**CAV_MAE_AUDIOSET_NORM._asdict())
    assert torch.allclose(cav.standardize(fbank), normalize_fbank(fbank, *CAV_MAE_AUDIOSET_NORM))


def test_audiomae_geometry():
    tokenizer = AudioTokenizer(dim=32)
    tokens = tokenizer(torch.randn(2, 1000, 128) * 4 - 5)
    assert tokenizer.grid == tokens.grid == (64, 8)
    assert tokens.embed.shape == (2, 512, 32) and tokens.target.shape == (2, 512, 256)
    assert tokenizer.target_dim == 256 and tokenizer.kernel == (16, 16) and tokens.valid is None


def test_waveform_and_precomputed_fbank_give_the_same_tokens():
    tokenizer, waves = small(), waveforms(2)
    from_wave = tokenizer(waves)
    from_fbank = tokenizer(batch_fbank(waves, target_length=98))  # padded to 128 inside
    assert from_wave.grid == from_fbank.grid == (8, 8)
    assert from_wave.embed.shape == (2, 64, 16) and from_wave.target.shape == (2, 64, 256)
    # the same spectrogram (the targets are equal) through the 16 x 16 = 256-term projection in another batch shape
    assert torch.allclose(from_wave.embed, from_fbank.embed, atol=rounding_bound(from_fbank.embed, 2, 256), rtol=0)
    assert torch.equal(from_wave.target, from_fbank.target)
    longer = tokenizer(batch_fbank(waves, target_length=200))  # cropped to 128 inside
    assert torch.equal(longer.target, from_wave.target)


def test_tokens_are_time_major_patches_of_the_normalised_spectrogram():
    tokenizer = small(norm_target=False)
    fbank = torch.randn(1, 128, 128) * 4 - 5
    tokens = tokenizer(fbank)
    spectrogram = normalize_fbank(fbank[0], *AUDIOMAE_AUDIOSET_NORM)
    t, f = 2, 5  # token index t * F' + f
    patch = spectrogram[16 * t : 16 * (t + 1), 16 * f : 16 * (f + 1)]
    assert torch.allclose(tokens.target[0, t * 8 + f], patch.reshape(-1), atol=rounding_bound(patch, 2, 1), rtol=0)
    weight, bias = tokenizer.proj.weight[:, 0], tokenizer.proj.bias
    embedded = (weight * patch).sum(dim=(1, 2)) + bias + sincos_pos_embed((8, 8), 16, "separable")[t * 8 + f]
    # the projection's 256 products, the bias and the position: 2 stages of at most 256 terms
    assert torch.allclose(tokens.embed[0, t * 8 + f], embedded, atol=rounding_bound(embedded, 2, 256), rtol=0)


def test_normalised_targets_are_per_patch():
    fbank = torch.randn(2, 128, 128)
    tokens = small()(fbank)
    image = normalize_fbank(fbank, *AUDIOMAE_AUDIOSET_NORM)[:, None]
    expected = patch_targets(image, (16, 16), normalize=True)
    # a patch's mean and std over its 256 values, then the normalised values' own mean
    bound = rounding_bound(expected, 3, 256)
    assert torch.allclose(tokens.target, expected, atol=bound, rtol=0)
    assert torch.allclose(tokens.target.mean(-1), torch.zeros(2, 64), atol=bound, rtol=0)


def test_silence_gives_finite_tokens():
    tokens = small()(torch.zeros(2, 16000))
    assert torch.isfinite(tokens.embed).all() and torch.isfinite(tokens.target).all()


@pytest.mark.parametrize(
    "shape, message",
    [
        ((2, 100, 64), r"expected a waveform \(B, S\) or a raw fbank \(B, T, 128\), got shape \(2, 100, 64\)"),
        ((2, 1, 100, 128), r"got shape \(2, 1, 100, 128\)"),
        ((2, 399), r"S >= 400 .*got shape \(2, 399\)"),
    ],
)
def test_wrong_input_shapes_name_expected_and_got(shape, message):
    with pytest.raises(ValueError, match=message):
        small()(torch.zeros(shape))


@pytest.mark.parametrize(
    "kwargs, message",
    [({"target_length": 1000}, "T=1000 is not a multiple of 16"),
     ({"num_mel_bins": 120}, "F=120 is not a multiple of 16")],
)
def test_lattice_that_does_not_divide_fails_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AudioTokenizer(dim=16, **kwargs)


def test_gin_binds_the_normalisation():
    gin.parse_config(
        "AudioTokenizer.dim = 8\nAudioTokenizer.mean = -5.081\nAudioTokenizer.std = 4.4849\n"
        "AudioTokenizer.norm_scale = 1.0\nAudioTokenizer.target_length = 64"
    )
    tokenizer = gin.get_configurable("mmmae.AudioTokenizer")()
    fbank = torch.randn(1, 64, 128)
    assert tokenizer.grid == (4, 8)
    assert torch.allclose(tokenizer.standardize(fbank), normalize_fbank(fbank, *CAV_MAE_AUDIOSET_NORM))


def test_spec_augment_masks_bands_of_each_sample_in_training_only():
    from mmmae.data.transforms import SpecAugment

    tok = AudioTokenizer(dim=8, num_mel_bins=32, target_length=64, augment=SpecAugment(freq_mask=8, time_mask=16))
    plain = AudioTokenizer(dim=8, num_mel_bins=32, target_length=64)
    plain.load_state_dict(tok.state_dict())
    fbanks = torch.randn(4, 64, 32) + 5.0  # raw fbanks with no zeros of their own
    torch.manual_seed(0)
    masked = tok(fbanks).target
    assert not torch.equal(masked, plain(fbanks).target)
    torch.manual_seed(0)
    assert torch.equal(tok(fbanks).target, masked)  # reproducible from the torch seed
    assert torch.equal(tok.eval()(fbanks).target, plain(fbanks).target)  # no augmentation in eval mode
    for i, fbank in enumerate(fbanks):
        zeros = tok.augment(fbank, torch.Generator().manual_seed(i)) == 0  # (T, F)
        bands = zeros.all(dim=0) | zeros.all(dim=1)[:, None]  # whole frequency bands or time steps
        assert torch.equal(zeros, bands) and zeros.any()
