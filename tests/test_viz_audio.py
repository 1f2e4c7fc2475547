"""Spectrogram figures: patch boxes on the (time, frequency) grid, the axes, the shaded tokens."""

import torch

from mmmae.tokenizers.audio import AudioTokenizer
from mmmae.types import MaskPlan
from mmmae.viz_audio import audio_mask_figure, audio_reconstruction_figure, hidden_tokens, patch_boxes
from tests.test_viz_figure import drawn_outside


def test_patch_boxes_place_token_t_f_at_its_time_and_frequency():
    # grid (T', F') = (3, 2): token 3 is t 1, f 1; patch 16 frames of 10 ms and 16 mel bins
    assert patch_boxes(torch.tensor([0, 3]), (3, 2), 16, 0.01) == [(0.0, 0, 0.16, 16), (0.16, 16, 0.16, 16)]


def test_hidden_tokens_are_those_not_kept():
    assert hidden_tokens(torch.tensor([1, 3]), 5).tolist() == [0, 2, 4]


def test_figure_axes_give_the_frame_shift_and_rising_mel_centres_inside_the_band():
    tokenizer = AudioTokenizer(dim=8, num_mel_bins=64, target_length=96)
    frame_s, centres = tokenizer.figure_axes()
    assert frame_s == 0.01
    assert centres.shape == (64,)
    assert bool((centres.diff() > 0).all()) and 20 < centres[0] and centres[-1] < 8000  # Kaldi: 20 Hz to Nyquist


def mask_plan(keep: list[int], predict: list[int]) -> MaskPlan:
    return MaskPlan(keep=torch.tensor([keep]), predict=torch.tensor([predict]))


def test_mask_figure_shades_the_hidden_tokens_left_and_the_predicted_right():
    tokenizer = AudioTokenizer(dim=8, num_mel_bins=32, target_length=48)  # grid (3, 2): 6 tokens
    audio = torch.randn(1, 16000, generator=torch.Generator().manual_seed(0))
    fig = audio_mask_figure(tokenizer, audio, mask_plan([0, 4], [1, 2, 3]), "audio")
    encoder, decoder = fig.axes
    assert len(encoder.patches) == 4 and len(decoder.patches) == 3  # hidden: 6 - 2; predicted: 3
    assert drawn_outside(fig) == []
    assert fig.get_figwidth() * fig.dpi >= 800


def test_reconstruction_figure_outlines_each_predicted_patch():
    tokenizer = AudioTokenizer(dim=8, num_mel_bins=32, target_length=48)
    audio = torch.randn(2, 16000, generator=torch.Generator().manual_seed(0))
    plan = MaskPlan(keep=torch.tensor([[0, 4], [1, 5]]), predict=torch.tensor([[1, 2, 3], [0, 2, 3]]))
    fig = audio_reconstruction_figure(tokenizer, audio, torch.zeros(2, 3, 256), plan, 1, "audio, step 2")
    inputs, encoder, prediction = fig.axes
    assert (len(inputs.patches), len(encoder.patches), len(prediction.patches)) == (0, 4, 3)
    assert drawn_outside(fig) == []
