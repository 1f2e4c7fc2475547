"""fill: the answers of deterministic, sampling and self-filling decoders at a plan's predict; target_pixels:
targets back to pixels, hidden patches never lending their own statistics."""

import pytest
import torch

from mmmae.generate import fill, hidden_tokens, nearest_known, target_pixels
from mmmae.masking.given import hidden_plan
from mmmae.masking.rng import MaskRNG
from tests.generation_fakes import SamplingDecoder, SamplingModelDecoder, SelfFillingDecoder, video_model


def clip_batch():
    return {"video": torch.rand(2, 3, 4, 16, 16, generator=torch.Generator().manual_seed(1))}


def test_a_deterministic_decoder_answers_as_in_the_models_forward():
    model, batch = video_model(), clip_batch()
    out = model(batch, MaskRNG.seeded(0)).outputs["video"]
    filled = fill(model, batch, "video", out.plan)
    assert filled.shape == (1, *out.prediction.shape)
    torch.testing.assert_close(filled[0], out.prediction)


def test_a_deterministic_decoder_refuses_several_samples_and_settings():
    model, batch = video_model(), clip_batch()
    plan = hidden_plan(torch.arange(8).repeat(2, 1) >= 4)
    with pytest.raises(ValueError, match="MaskTokenDecoder, the decoder of 'video', is deterministic"):
        fill(model, batch, "video", plan, num_samples=2)
    with pytest.raises(ValueError, match="takes no sampling settings"):
        fill(model, batch, "video", plan, steps=3)


def test_a_sampling_decoder_draws_different_samples_reproducibly_from_the_visible_tokens():
    model, batch = video_model(SamplingDecoder), clip_batch()
    plan = hidden_plan(torch.arange(8).repeat(2, 1) >= 5)
    first = fill(model, batch, "video", plan, num_samples=3, generator=torch.Generator().manual_seed(0), steps=7)
    again = fill(model, batch, "video", plan, num_samples=3, generator=torch.Generator().manual_seed(0), steps=7)
    decoder = model.modalities["video"].decoder
    assert first.shape == (3, 2, 3, 2 * 8 * 8 * 3)
    assert torch.equal(first, again)
    assert not torch.equal(first[0], first[1])
    assert decoder.calls[0] == ((2, 5, 32), 7)  # the kept tokens, encoded; the settings passed on


def test_a_decoder_with_its_own_fill_is_called_once_per_sample():
    model, batch = video_model(SelfFillingDecoder), clip_batch()
    plan = hidden_plan(torch.arange(8).repeat(2, 1) >= 6)
    filled = fill(model, batch, "video", plan, num_samples=2, steps=4)
    assert filled[:, 0, 0, 0].tolist() == [1.0, 2.0]
    assert model.modalities["video"].decoder.calls == [4, 4]


def test_a_model_level_sampling_decoder_is_dispatched():
    model, batch = video_model(model_decoder=SamplingModelDecoder), clip_batch()
    plan = hidden_plan(torch.arange(8).repeat(2, 1) >= 6)
    filled = fill(model, batch, "video", plan, num_samples=2, generator=torch.Generator().manual_seed(0))
    assert filled.shape == (2, 2, 2, 384) and not torch.equal(filled[0], filled[1])


def test_a_modality_without_a_decoder_or_not_in_the_batch_is_refused():
    model = video_model()
    model.modalities["video"].decoder = None
    plan = hidden_plan(torch.arange(8).repeat(2, 1) >= 6)
    with pytest.raises(ValueError, match="the model has no decoder for 'video'"):
        fill(model, clip_batch(), "video", plan)
    with pytest.raises(ValueError, match="the batch has no 'video' entry"):
        fill(model, {}, "video", plan)


def test_a_token_is_hidden_when_any_of_its_pixels_is():
    mask = torch.zeros(1, 4, 16, 16, dtype=torch.bool)
    mask[0, 3, 9, 0] = True  # frame 3 -> tubelet 1; row 9 -> patch row 1; column 0 -> patch column 0
    hidden = hidden_tokens(mask, (2, 8, 8))
    assert hidden.nonzero().tolist() == [[0, 4 + 2 * 1 + 0]]


def test_hidden_plan_keeps_the_visible_tokens_and_refuses_uneven_counts():
    plan = hidden_plan(torch.tensor([[False, True, False, True]]))
    assert plan.keep.tolist() == [[0, 2]] and plan.predict.tolist() == [[1, 3]]
    with pytest.raises(ValueError, match=r"the same number of tokens, got \[1, 2\]"):
        hidden_plan(torch.tensor([[True, False], [True, True]]))


@pytest.mark.parametrize("norm_target", [True, False, "mae", "standardized"])
def test_the_tokens_own_targets_come_back_as_the_pixels(norm_target):
    model, batch = video_model(norm_target=norm_target), clip_batch()
    tokens = model.modalities["video"].tokenize(batch["video"])
    known = torch.ones(2, 8, dtype=torch.bool)
    pixels = target_pixels(model, "video", tokens.target, tokens.grid, batch["video"], known)
    # float32 round trip of values in [0, 1] through a few multiplies: a few ulps of 1
    torch.testing.assert_close(pixels, batch["video"], atol=1e-5, rtol=0)


def test_a_hidden_patch_is_drawn_with_its_nearest_visible_patches_statistics():
    model = video_model(norm_target=True)
    video = torch.zeros(1, 3, 2, 8, 24)  # one row of three tokens, constant values 0.2, 0.5 and 0.8 apart
    for i, value in enumerate((0.2, 0.5, 0.8)):
        video[..., 8 * i:8 * (i + 1)] = value
    video[..., 0, 0, :] += 0.1  # some spread in every token
    target = model.modalities["video"].tokenize(video).target
    pixels = target_pixels(model, "video", target, (1, 1, 3), video, torch.tensor([[True, False, True]]))
    # the middle token borrows the mean of its two neighbours' (0.2 + 0.5/0.8 halfway: 0.5 plus their spread)
    middle, outer = pixels[..., 8:16], (video[..., :8] + video[..., 16:]) / 2
    torch.testing.assert_close(middle, outer, atol=1e-5, rtol=0)
    torch.testing.assert_close(pixels[..., :8], video[..., :8], atol=1e-5, rtol=0)


def test_nearest_known_averages_ties_and_keeps_known_tokens():
    stats = torch.tensor([[[1.0], [5.0], [3.0]]])
    assert nearest_known(stats, (1, 1, 3), torch.tensor([[True, False, True]])).flatten().tolist() == [1.0, 2.0, 3.0]
    assert nearest_known(stats, (1, 1, 3), torch.tensor([[True, True, False]])).flatten().tolist() == [1.0, 5.0, 5.0]
    with pytest.raises(ValueError, match="every token of a sample is hidden"):
        nearest_known(stats, (1, 1, 3), torch.tensor([[False, False, False]]))


def test_targets_that_are_not_the_clips_tubelets_are_refused():
    model = video_model()
    model.modalities["video"].tokenizer.target_kernel = (1, 8, 8)
    with pytest.raises(ValueError, match="frames subsampled from the clip"):
        target_pixels(model, "video", torch.zeros(1, 8, 192), (2, 2, 2), torch.rand(1, 3, 4, 16, 16),
                      torch.ones(1, 8).bool())
