"""HF transformers VideoMAE -> mmmae: the converted model reproduces the HF model numerically."""

import json

import pytest
import torch
from safetensors.torch import save_file
from transformers import VideoMAEConfig, VideoMAEForPreTraining, VideoMAEForVideoClassification, VideoMAEModel

from mmmae.masking.rng import MaskRNG
from mmmae.tokenizers.patches import IMAGENET_MEAN, IMAGENET_STD
from mmmae.types import MaskPlan
from mmmae.zoo.convert import convert as convert_source
from mmmae.zoo.convert import convert_checkpoint
from mmmae.zoo.convert.hf_videomae import convert
from mmmae.zoo.pretrained import build_model, from_pretrained
from tests.float32_bound import mse_bound, rounding_bound, vit_stages

SMALL = dict(image_size=32, patch_size=8, num_channels=3, num_frames=4, tubelet_size=2, hidden_size=64,
             num_hidden_layers=2, num_attention_heads=4, intermediate_size=96, decoder_hidden_size=32,
             decoder_num_hidden_layers=1, decoder_num_attention_heads=4, decoder_intermediate_size=128,
             use_mean_pooling=False, norm_pix_loss=True)
NUM_TOKENS = 2 * 4 * 4


def randomized(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every parameter random, biases (q/v biases included) and LayerNorm shifts non-zero, so a
    dropped or misplaced tensor shows in the outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            is_norm_scale = ("layernorm" in name or "norm." in name) and name.endswith("weight")
            p.copy_(1.0 + 0.2 * noise if is_norm_scale else 0.1 * noise)
    return model.eval()


def hf_pretraining(**overrides) -> VideoMAEForPreTraining:
    return randomized(VideoMAEForPreTraining(VideoMAEConfig(**{**SMALL, **overrides})))


def clips(batch: int = 2, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """[0, 1] clips (B, C, T, H, W) for mmmae and the same clips standardised (B, T, C, H, W) for HF."""
    video = torch.rand(batch, 3, 4, 32, 32, generator=torch.Generator().manual_seed(seed))
    mean, std = (torch.tensor(s).view(1, 3, 1, 1, 1) for s in (IMAGENET_MEAN, IMAGENET_STD))
    return video, ((video - mean) / std).permute(0, 2, 1, 3, 4)


def bool_mask(batch: int = 2, masked: int = 24, seed: int = 2) -> torch.Tensor:
    """(B, N) bool, True = masked, the same count in every row (as HF requires)."""
    noise = torch.rand(batch, NUM_TOKENS, generator=torch.Generator().manual_seed(seed))
    return torch.zeros(batch, NUM_TOKENS, dtype=torch.bool).scatter(1, noise.argsort(1)[:, :masked], True)


def plan_from_mask(mask: torch.Tensor) -> MaskPlan:
    batch = mask.shape[0]
    return MaskPlan(keep=(~mask).nonzero()[:, 1].view(batch, -1), predict=mask.nonzero()[:, 1].view(batch, -1))


def mmmae_forward(model, video: torch.Tensor, mask: torch.Tensor):
    """The converted model's pretraining forward with the given mask (not its masker's)."""
    plan = plan_from_mask(mask)
    model.modalities["video"].masker = lambda tokens, batch, rng: plan
    with torch.no_grad():
        return model({"video": video}, MaskRNG.seeded(0))


def converted_model(hf: torch.nn.Module):
    converted = convert(hf.state_dict(), hf.config.to_dict())
    model = build_model(converted.config)
    model.load_state_dict(converted.state_dict, strict=not converted.metadata["encoder_only"])
    return converted, model.eval()


def max_error(a: torch.Tensor, b: torch.Tensor, what: str) -> float:
    assert a.shape == b.shape, f"{what}: shapes {tuple(a.shape)} vs {tuple(b.shape)}"
    error = (a - b).abs().max().item()
    print(f"{what}: max abs error {error:.2e}")
    return error


def longest_sum(config: VideoMAEConfig, decoder: bool = False) -> int:
    """The longest sum in an HF VideoMAE forward: a patch's C*t*p*p values, a width, an MLP's
    hidden size or the token count; the decoder's widths too for predictions."""
    tokens = config.num_frames // config.tubelet_size * (config.image_size // config.patch_size) ** 2
    sums = [config.num_channels * config.tubelet_size * config.patch_size ** 2, config.hidden_size,
            config.intermediate_size, tokens]
    return max(sums + ([config.decoder_hidden_size, config.decoder_intermediate_size] if decoder else []))


def bound(reference: torch.Tensor, config: VideoMAEConfig, decoder: bool = False) -> float:
    """float32 rounding bound of an encoder output (tokens or pooled feature) or, with `decoder`,
    of the predictions of the HF model with `config`: stages from the depths, terms from the sizes."""
    stages = vit_stages(config.num_hidden_layers, config.decoder_num_hidden_layers if decoder else None)
    return rounding_bound(reference, stages, longest_sum(config, decoder))


def loss_bound(out, reference, config: VideoMAEConfig) -> float:
    """The loss's bound from its predictions' (`bound`) and its targets' (standardised, then
    normalised over a patch's P values: 2 stages of P terms), over the B*Q*P squares averaged."""
    target = out.outputs["video"].tokens.target
    difference = bound(reference.logits, config, decoder=True) + rounding_bound(target, 2, target.shape[-1])
    return mse_bound(reference.loss, difference, reference.logits.numel())


def check_parity(model, hf: VideoMAEForPreTraining, what: str):
    """The converted model's encoder features and predictions against HF's, the same clips and
    mask; returns (mmmae output, HF output, the mask)."""
    video, pixel_values = clips()
    mask = bool_mask()
    with torch.no_grad():
        reference = hf(pixel_values, bool_masked_pos=mask)
        features = hf.videomae(pixel_values, bool_masked_pos=mask).last_hidden_state
    out = mmmae_forward(model, video, mask)
    assert max_error(out.outputs["video"].encoded, features, f"{what} encoder features") <= bound(features, hf.config)
    assert max_error(out.outputs["video"].prediction, reference.logits, f"{what} reconstruction logits") <= bound(
        reference.logits, hf.config, decoder=True)
    return out, reference, mask


@pytest.mark.parametrize("overrides", [{}, {"norm_pix_loss": False, "use_mean_pooling": True}])
def test_pretraining_parity(overrides):
    hf = hf_pretraining(**overrides)
    converted, model = converted_model(hf)
    out, reference, mask = check_parity(model, hf, "pretraining")
    assert max_error(out.loss, reference.loss, "loss") <= loss_bound(out, reference, hf.config)
    assert not converted.state_dict["modalities.video.embedding"].any()
    assert f"video/TubeletTokenizer.norm_target = {hf.config.norm_pix_loss}" in converted.config


def test_a_dropped_tensor_moves_the_outputs_far_outside_the_bounds():
    """The bounds are float32 rounding, not slack: zeroing one converted bias (as a dropped or
    misplaced key would) moves the features or predictions it feeds by ~0.1, far above them."""
    hf = hf_pretraining()
    converted, _ = converted_model(hf)
    video, pixel_values = clips()
    mask = bool_mask()
    with torch.no_grad():
        logits = hf(pixel_values, bool_masked_pos=mask).logits
        features = hf.videomae(pixel_values, bool_masked_pos=mask).last_hidden_state
    for key, decoder in [("encoder.blocks.1.norm1.bias", False), ("modalities.video.decoder.head.bias", True)]:
        state = dict(converted.state_dict) | {key: torch.zeros_like(converted.state_dict[key])}
        model = build_model(converted.config)
        model.load_state_dict(state)
        out = mmmae_forward(model.eval(), video, mask).outputs["video"]
        output, reference = (out.prediction, logits) if decoder else (out.encoded, features)
        error, allowed = max_error(output, reference, f"without {key}"), bound(reference, hf.config, decoder)
        print(f"without {key}: {error / allowed:.0f} times the bound {allowed:.1e}")
        assert error > 10 * allowed


def test_legacy_q_bias_keys_and_the_mlp_ratio_of_each_part():
    """Files saved by transformers < 5 name the biases q_bias / v_bias; they convert the same."""
    hf = hf_pretraining()
    state = {k.replace("query.bias", "q_bias").replace("value.bias", "v_bias"): v for k, v in hf.state_dict().items()}
    assert any(k.endswith("attention.attention.q_bias") for k in state)
    converted = convert(state, hf.config.to_dict())
    model = build_model(converted.config)
    model.load_state_dict(converted.state_dict)
    assert model.encoder.blocks[0].mlp[0].out_features == 96
    assert model.modalities["video"].decoder.transformer.blocks[0].mlp[0].out_features == 128
    video, pixel_values = clips()
    with torch.no_grad():
        logits = hf(pixel_values, bool_masked_pos=bool_mask()).logits
    assert max_error(mmmae_forward(model.eval(), video, bool_mask()).outputs["video"].prediction, logits,
                     "legacy-key logits") <= bound(logits, hf.config, decoder=True)


@pytest.mark.parametrize("use_mean_pooling", [True, False])
def test_videomae_model_features_through_a_pretrained_directory(tmp_path, use_mean_pooling):
    """VideoMAEModel (no decoder) saved by HF -> `convert_checkpoint` -> `from_pretrained`."""
    hf = randomized(VideoMAEModel(VideoMAEConfig(**{**SMALL, "use_mean_pooling": use_mean_pooling})))
    hf.save_pretrained(tmp_path / "hf")
    convert_checkpoint("hf-videomae", tmp_path / "hf", tmp_path / "mmmae")
    model = from_pretrained(tmp_path / "mmmae")
    assert isinstance(model.encoder.norm, torch.nn.LayerNorm) is not use_mean_pooling
    video, pixel_values = clips()
    mask = bool_mask()
    with torch.no_grad():
        visible = hf(pixel_values, bool_masked_pos=mask).last_hidden_state
        full = hf(pixel_values).last_hidden_state
        encoded, _ = model.encode({"video": video}, "video")
    assert max_error(mmmae_forward(model, video, mask).outputs["video"].encoded, visible,
                     f"VideoMAEModel(use_mean_pooling={use_mean_pooling}) visible features") <= bound(
        visible, hf.config)
    assert max_error(encoded, full, f"VideoMAEModel(use_mean_pooling={use_mean_pooling}) all tokens") <= bound(
        full, hf.config)


def test_missing_and_unexpected_keys_are_listed():
    state = hf_pretraining().state_dict()
    del state["videomae.encoder.layer.1.attention.attention.key.weight"]
    state["decoder.extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"missing keys \[encoder\.layer\.1\.attention\.attention\.key\.weight\]"
                                         r".*unexpected keys \[decoder\.extra\.weight\]"):
        convert(state, hf_pretraining().config.to_dict())


def test_config_that_disagrees_with_the_weights_is_refused():
    hf = hf_pretraining()
    with pytest.raises(ValueError, match="patch_size=16"):
        convert(hf.state_dict(), {**hf.config.to_dict(), "patch_size": 16})


def test_converted_model_trains_with_its_own_masker():
    converted, model = converted_model(hf_pretraining())
    video, _ = clips()
    out = model.train()({"video": video}, MaskRNG.seeded(0))
    out.loss.backward()
    assert out.outputs["video"].plan.keep.shape == (2, 2 * 2)  # tube masking at 0.9: 2 of 16 per frame
    assert torch.isfinite(out.loss) and model.encoder.blocks[0].attn.qkv.weight.grad.abs().sum() > 0


def test_processor_statistics_and_user_options_set_the_standardisation(tmp_path):
    hf_pretraining().save_pretrained(tmp_path)
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"image_mean": [0.5] * 3, "image_std": [0.25] * 3}))
    converted = convert_source("hf-videomae", tmp_path)
    assert "video/TubeletTokenizer.mean = (0.5, 0.5, 0.5)" in converted.config
    assert not converted.metadata["notes"]  # nothing assumed
    converted = convert_source("hf-videomae", tmp_path, options={"std": "0.2,0.2,0.2", "mask_ratio": 0.75})
    assert "video/TubeletTokenizer.std = (0.2, 0.2, 0.2)" in converted.config
    assert "video/TubeMasking.ratio = 0.75" in converted.config


def test_video_classification_fc_norm_is_kept_as_the_norm_of_the_pooled_feature(tmp_path):
    """VideoMAEForVideoClassification (use_mean_pooling): the converted model's pooled features
    are HF's classifier input fc_norm(mean over tokens) (fc_norm eps 1e-5, torch's default)."""
    hf = randomized(VideoMAEForVideoClassification(VideoMAEConfig(**{**SMALL, "use_mean_pooling": True,
                                                                     "num_labels": 5})))
    hf.save_pretrained(tmp_path / "hf")
    convert_checkpoint("hf-videomae", tmp_path / "hf", tmp_path / "mmmae")
    model = from_pretrained(tmp_path / "mmmae")
    assert model.encoder.pool_norm.eps == hf.fc_norm.eps == 1e-5
    video, pixel_values = clips()
    with torch.no_grad():
        reference = hf.fc_norm(hf.videomae(pixel_values).last_hidden_state.mean(dim=1))
        features = model.features({"video": video}, "video")
    # stages: patch projection, 2 blocks, pooling + fc_norm; longest sum: the C*t*p*p = 384 patch values
    assert max_error(features, reference, "classification pooled features") <= bound(reference, hf.config)
    converted = convert(hf.state_dict(), hf.config.to_dict())
    assert converted.metadata["dropped_keys"] == ["classifier.bias", "classifier.weight"]


def test_a_bare_weights_file_needs_the_head_counts_its_config_would_have_given(tmp_path):
    """Without config.json a 64-wide encoder has no known head count: asked for, never guessed."""
    hf = hf_pretraining()
    save_file(hf.state_dict(), str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match=r"the encoder is 64 wide.*--option heads=N"):
        convert_source("hf-videomae", tmp_path / "model.safetensors")
    converted = convert_source("hf-videomae", tmp_path / "model.safetensors", options={"heads": 4, "decoder_heads": 4})
    assert "Encoder.heads = 4" in converted.config and "video/MaskTokenDecoder.heads = 4" in converted.config
