"""The composed model: shapes, the encoder sees only visible tokens, features."""

from pathlib import Path

import pytest
import torch
from torch.utils.data import default_collate

from mmmae.config import parse_config
from mmmae.data.moving_digits.dataset import MovingDigits
from mmmae.masking.none import NoMasking
from mmmae.masking.rng import MaskRNG
from mmmae.model import MaskedAutoencoder
from mmmae.types import BindingProblem
from tests.conftest import MICRO_GIN
from tests.float32_bound import longest_sum, rounding_bound, transformer_stages


def micro_model_and_batch():
    parse_config([MICRO_GIN])
    torch.manual_seed(0)
    model = MaskedAutoencoder()
    data = MovingDigits(split="train", num_samples=8, frames=4, size=16, digit_size=8)
    return model, default_collate([data[i] for i in range(4)])


def test_forward_shapes_and_loss():
    model, batch = micro_model_and_batch()
    out = model(batch, MaskRNG.seeded(0))
    video = out.outputs["video"]
    assert video.tokens.grid == (2, 2, 2)
    # quickstart tube ratio 0.75 over 2x2 positions: 1 kept per frame, 3 masked per frame
    assert video.plan.keep.shape == (4, 2) and video.plan.predict.shape == (4, 6)
    assert video.encoded.shape == (4, 2, 32)
    assert video.prediction.shape == (4, 6, 2 * 8 * 8 * 3)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    assert torch.equal(out.logs["loss"], out.loss.detach())


def test_encoder_sees_only_visible_tokens():
    model, batch = micro_model_and_batch()
    first = model(batch, MaskRNG.seeded(3)).outputs["video"]
    changed = dict(batch, video=batch["video"].clone())
    keep = set(first.plan.keep[0].tolist())
    for token in set(range(8)) - keep:  # token index = t*4 + h*2 + w on the (2, 2, 2) grid
        t, h, w = token // 4, (token // 2) % 2, token % 2
        changed["video"][0, :, 2 * t : 2 * t + 2, 8 * h : 8 * h + 8, 8 * w : 8 * w + 8] = 1.0
    second = model(changed, MaskRNG.seeded(3)).outputs["video"]
    assert torch.equal(first.encoded, second.encoded)
    assert not torch.equal(first.tokens.target, second.tokens.target)


def test_features_pool_all_tokens():
    model, batch = micro_model_and_batch()
    features = model.features(batch, "video")
    assert features.shape == (4, 32)
    assert not torch.allclose(features[0], features[1])


MICRO_OVERRIDES = str(Path(__file__).parent / "fixtures" / "micro_overrides.gin")


def multimodal_model_and_batch(gin_params: tuple[str, ...] = (), **dataset_args):
    parse_config(["recipes/quickstart.gin", MICRO_OVERRIDES], gin_params)
    torch.manual_seed(0)
    model = MaskedAutoencoder()
    data = MovingDigits(split="train", num_samples=8, frames=4, size=16, digit_size=8,
                        modalities=("video", "audio", "imu", "text"), **dataset_args)
    return model, default_collate([data[i] for i in range(4)])


def test_multimodal_forward_logs_every_objective():
    model, batch = multimodal_model_and_batch()
    out = model(batch, MaskRNG.seeded(0))
    assert set(out.outputs) == {"video", "audio", "imu", "text"}
    for name in ("video_reconstruction", "audio_reconstruction", "imu_reconstruction", "text_mlm",
                 "contrastive_video_audio", "contrastive_video_imu", "contrastive_video_text"):
        assert torch.isfinite(out.logs[name]), name
    out.loss.backward()
    assert model.modalities["imu"].tokenizer.device_embed["center"].grad is not None


def test_full_view_encodes_every_token_of_each_modality_alone():
    model, batch = multimodal_model_and_batch(("Contrastive.view = 'masked'", "video_imu/Contrastive.view = 'full'"))
    assert model.full_views == ["imu", "video"]
    out = model(batch, MaskRNG.seeded(0))
    for m in ("video", "imu"):
        alone, _ = model.encode(batch, m)  # unmasked, this modality only
        bound = rounding_bound(alone, transformer_stages(model.encoder), longest_sum(model, alone.shape[1]))
        assert (out.outputs[m].full - alone).abs().max() <= bound, m
        assert out.outputs[m].full.shape[1] > out.outputs[m].encoded.shape[1]
    assert out.outputs["audio"].full is None and out.outputs["text"].full is None
    out.loss.backward()
    video_imu = next(o for o in model.objectives if getattr(o, "name", None) == "contrastive_video_imu")
    assert video_imu.heads["imu"].layers[0].weight.grad is not None


def test_full_view_keeps_every_token_when_the_encoder_sparsifies():
    model, batch = multimodal_model_and_batch(("Encoder.sparsify = @TokenSparsification()",
                                               "TokenSparsification.after_layer = 1"))
    out = model.train()(batch, MaskRNG.seeded(0))
    video = out.outputs["video"]
    assert video.full_mask.all() and video.full.shape[1] == video.tokens.embed.shape[1]
    assert not video.mask.all()  # the masked pass did drop tokens


def test_a_full_view_of_a_modality_the_model_lacks_is_refused():  # the objective reads it, full view or not
    parse_config(["recipes/quickstart.gin", MICRO_OVERRIDES],
                 ["video_imu/Contrastive.view = 'full'",
                  "MaskedAutoencoder.modalities = [@video/Modality(), @audio/Modality(), @text/Modality()]"])
    with pytest.raises(ValueError, match=r"reads \['imu'\], which the model does not have"):
        MaskedAutoencoder()


def test_a_multimodal_step_with_an_absent_modality_runs_under_bf16_autocast():
    """The packed path then meets bf16 and float32 tokens (PackedLayout.pack promotes them)."""
    model, batch = multimodal_model_and_batch()
    batch["audio_present"] = torch.tensor([True, False, True, True])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(batch, MaskRNG.seeded(0))
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert all(p.grad is not None for p in model.modalities["audio"].tokenizer.parameters() if p.requires_grad)


def test_missing_modalities_are_skipped_and_counted():
    model, batch = multimodal_model_and_batch()
    batch["audio_present"] = torch.tensor([True, False, True, False])
    out = model(batch, MaskRNG.seeded(0))
    assert out.logs["audio_reconstruction_skipped"] == 2
    assert out.logs["contrastive_video_audio_skipped"] == 2
    assert out.logs["video_reconstruction_skipped"] == 0
    assert not out.outputs["audio"].encoded[1].any()


def test_text_padding_takes_no_part_in_encoding():
    model, batch = multimodal_model_and_batch()
    ids = batch["text"]
    length = int((ids != 0).sum(dim=1).max())
    assert length < ids.shape[1], "captions must be padded for this test to mean anything"
    full = model.features({"text": ids}, "text")
    cut = model.features({"text": ids[:, :length]}, "text")
    # padding masked out of attention: the sums differ in order and length, not in value
    bound = rounding_bound(cut, transformer_stages(model.encoder), longest_sum(model, ids.shape[1]))
    assert (full - cut).abs().max() <= bound


def test_shape_mismatch_names_the_modality():
    model, batch = multimodal_model_and_batch()
    batch["audio"] = batch["audio"][:, None]
    with pytest.raises(ValueError, match="modality 'audio'"):
        model(batch, MaskRNG.seeded(0))


def test_a_masker_that_cannot_mask_raises_a_binding_problem_naming_the_modality_and_its_masker():
    """The model knows no gin file: it names the binding, and the check before training says where it is
    bound (tests/test_check.py)."""
    parse_config([MICRO_GIN], ["video/RandomMasking.ratio = 0.9", "video/Modality.masker = @video/RandomMasking()"])
    model = MaskedAutoencoder()
    data = MovingDigits(split="train", num_samples=4, frames=4, size=16, digit_size=8)
    with pytest.raises(BindingProblem, match=r"^modality 'video': RandomMasking.ratio = 0.9 masks 8 of 8") as error:
        model(default_collate([data[i] for i in range(2)]), MaskRNG.seeded(0))
    assert error.value.bindings == (("masker chosen in", "video/Modality.masker"),)


def test_a_modality_without_a_masker_is_encoded_whole_and_builds_no_decoder():
    """audio.gin gives audio a decoder; with no masker nothing is hidden, so none is built."""
    parse_config([MICRO_GIN, "modalities/audio.gin"], [
        "MovingDigits.modalities = ['video', 'audio']",
        "MaskedAutoencoder.modalities = [@video/Modality(), @audio/Modality()]"])
    model = MaskedAutoencoder()
    audio = model.modalities["audio"]
    assert isinstance(audio.masker, NoMasking) and audio.decoder is None
    assert not any(name.startswith("modalities.audio.decoder") for name, _ in model.named_parameters())
    data = MovingDigits(split="train", num_samples=2, frames=4, size=16, digit_size=8, modalities=("video", "audio"))
    out = model(default_collate([data[i] for i in range(2)]), MaskRNG.seeded(0)).outputs["audio"]
    assert out.plan.keep.shape[1] == out.tokens.num_tokens and out.plan.predict.shape[1] == 0
    assert out.prediction is None


def test_objectives_are_one_list_in_config_order_asked_through_the_protocol():
    parse_config(["recipes/quickstart.gin", str(Path(__file__).parent / "fixtures" / "micro_overrides.gin")])
    model = MaskedAutoencoder()
    assert [o.name for o in model.objectives] == [
        "video_reconstruction", "audio_reconstruction", "imu_reconstruction", "text_mlm",
        "contrastive_video_audio", "contrastive_video_imu", "contrastive_video_text"]
    # the weighted ones keep the state-dict keys of every checkpoint: objectives.<rank among them>
    assert model.objectives[4] is model.objectives.get_submodule("0")
    assert {k.split(".")[1] for k in model.state_dict() if k.startswith("objectives.")} == {"0", "1", "2"}


def test_an_objective_without_the_protocol_is_refused_naming_what_it_lacks():
    parse_config([MICRO_GIN])

    def loss(outputs, batch):
        return torch.zeros(()), {}

    with pytest.raises(ValueError, match=r"MaskedAutoencoder.objectives: .* lacks weight, full_view_modalities"):
        MaskedAutoencoder(objectives=[loss])


def test_an_objective_reading_a_modality_the_model_lacks_is_refused_at_build():
    parse_config([MICRO_GIN], ["video_audio/Contrastive.modalities = ['video', 'audio']",
                               "video_audio/Contrastive.in_dim = 32",
                               "MaskedAutoencoder.objectives = [@video/Reconstruction(), @video_audio/Contrastive()]"])
    with pytest.raises(ValueError, match=r"Contrastive reads \['audio'\], which the model does not have \(its "
                                         r"modalities: \['video'\]\)"):
        MaskedAutoencoder()
