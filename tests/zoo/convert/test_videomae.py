"""Official VideoMAE v1 / v2 checkpoints -> mmmae, checked against the HF model they were made from.

The official state dicts are written here key by key from a random HF model (the inverse of
HF's conversion script, independent of the converter's own mapping), with the official key
names and shapes: qkv without bias plus q_bias / v_bias, LayerNorm eps 1e-6 everywhere.
"""

import argparse

import pytest
import torch
from safetensors.torch import save_file
from transformers import VideoMAEConfig, VideoMAEForPreTraining, VideoMAEForVideoClassification

from mmmae.eval.classifier import Classifier
from mmmae.zoo.convert import convert_checkpoint
from mmmae.zoo.convert.videomae import convert
from mmmae.zoo.pretrained import build_model, from_pretrained
from tests.zoo.convert.test_hf_videomae import SMALL, bound, check_parity, clips, max_error, mmmae_forward, randomized

OFFICIAL = {**SMALL, "layer_norm_eps": 1e-6}
HEADS = {"heads": 4, "decoder_heads": 4}
RENAMED = {"layernorm_before": "norm1", "layernorm_after": "norm2", "attention.output.dense": "attn.proj",
           "intermediate.dense": "mlp.fc1", "output.dense": "mlp.fc2"}


def official_blocks(sd: dict, src: str, dst: str, count: int) -> dict:
    out = {}
    for i in range(count):
        attn = f"{src}.{i}.attention.attention."
        for old, new in RENAMED.items():
            for p in ("weight", "bias"):
                out[f"{dst}.{i}.{new}.{p}"] = sd[f"{src}.{i}.{old}.{p}"]
        out[f"{dst}.{i}.attn.qkv.weight"] = torch.cat([sd[f"{attn}{n}.weight"] for n in ("query", "key", "value")])
        out[f"{dst}.{i}.attn.q_bias"] = sd[f"{attn}query.bias"]
        out[f"{dst}.{i}.attn.v_bias"] = sd[f"{attn}value.bias"]
    return out


def official_pretraining(hf: VideoMAEForPreTraining) -> dict:
    """MCG-NJU modeling_pretrain.py keys of an HF VideoMAEForPreTraining."""
    sd, cfg = hf.state_dict(), hf.config
    out = {"encoder.patch_embed.proj.weight": sd["videomae.embeddings.patch_embeddings.projection.weight"],
           "encoder.patch_embed.proj.bias": sd["videomae.embeddings.patch_embeddings.projection.bias"],
           "encoder.norm.weight": sd["videomae.layernorm.weight"], "encoder.norm.bias": sd["videomae.layernorm.bias"],
           "encoder_to_decoder.weight": sd["encoder_to_decoder.weight"], "mask_token": sd["mask_token"],
           **{k: sd[k] for k in ("decoder.norm.weight", "decoder.norm.bias", "decoder.head.weight",
                                 "decoder.head.bias")}}
    out |= official_blocks(sd, "videomae.encoder.layer", "encoder.blocks", cfg.num_hidden_layers)
    out |= official_blocks(sd, "decoder.decoder_layers", "decoder.blocks", cfg.decoder_num_hidden_layers)
    return {k: v.clone() for k, v in out.items()}


def official_hf(**overrides) -> VideoMAEForPreTraining:
    """An HF model with the official LayerNorm eps (1e-6, the decoder's last norm included)."""
    hf = randomized(VideoMAEForPreTraining(VideoMAEConfig(**{**OFFICIAL, **overrides})))
    hf.decoder.norm.eps = 1e-6
    return hf


def test_official_layout_has_the_documented_names_and_shapes():
    hf = official_hf()
    state = official_pretraining(hf)
    assert state["encoder.patch_embed.proj.weight"].shape == (64, 3, 2, 8, 8)
    assert state["encoder.blocks.1.attn.qkv.weight"].shape == (192, 64)
    assert state["encoder.blocks.1.attn.q_bias"].shape == (64,)
    assert state["encoder_to_decoder.weight"].shape == (32, 64)
    assert state["mask_token"].shape == (1, 1, 32)
    assert state["decoder.head.weight"].shape == (2 * 8 * 8 * 3, 32)
    assert not any("bias" in k and "qkv" in k for k in state)


def test_v1_pickle_is_refused_then_converted_with_allow_pickle(tmp_path):
    hf = official_hf()
    path = tmp_path / "checkpoint-799.pth"
    torch.save({"model": official_pretraining(hf), "epoch": 799, "args": argparse.Namespace(model="pretrain")}, path)
    with pytest.raises(ValueError, match=r"arbitrary code.*--allow_pickle"):
        convert_checkpoint("videomae", path, tmp_path / "out", options=HEADS)
    assert not (tmp_path / "out").exists()
    convert_checkpoint("videomae", path, tmp_path / "out", allow_pickle=True, options=HEADS)
    model = from_pretrained(tmp_path / "out")
    assert type(model.modalities["video"].masker).__name__ == "TubeMasking"
    check_parity(model, hf, "v1 .pth")


def test_v2_orig_mod_prefix_converts_with_running_cell_masking(tmp_path):
    hf = official_hf()
    path = tmp_path / "vit_s_k710_dl_from_giant.safetensors"
    save_file({f"_orig_mod.{k}": v.contiguous() for k, v in official_pretraining(hf).items()}, str(path))
    convert_checkpoint("videomae-v2", path, tmp_path / "out", options={"heads": "4", "decoder_heads": "4"})
    model = from_pretrained(tmp_path / "out")
    assert type(model.modalities["video"].masker).__name__ == "RunningCellMasking"
    check_parity(model, hf, "v2 _orig_mod.")


def test_tubelet_and_patch_come_from_the_weights():
    hf = official_hf(tubelet_size=1, patch_size=16)
    converted = convert(official_pretraining(hf), HEADS)
    assert "video/TubeletTokenizer.tubelet = 1" in converted.config
    assert "video/TubeletTokenizer.patch = 16" in converted.config
    model = build_model(converted.config)
    model.load_state_dict(converted.state_dict)
    video, pixel_values = clips()
    mask = torch.zeros(2, 4 * 2 * 2, dtype=torch.bool)
    mask[0, :10], mask[1, 6:] = True, True
    with torch.no_grad():
        logits = hf(pixel_values, bool_masked_pos=mask).logits
    assert max_error(mmmae_forward(model.eval(), video, mask).outputs["video"].prediction, logits,
                     "tubelet 1 / patch 16 logits") <= bound(logits, hf.config, decoder=True)


def official_fine_tuned(hf: VideoMAEForVideoClassification) -> dict:
    """modeling_finetune.py keys of an HF VideoMAEForVideoClassification: patch_embed, blocks,
    `fc_norm` (mean pooling) or `norm`, and the classifier as `head`."""
    sd = hf.state_dict()
    state = {"patch_embed.proj.weight": sd["videomae.embeddings.patch_embeddings.projection.weight"],
             "patch_embed.proj.bias": sd["videomae.embeddings.patch_embeddings.projection.bias"],
             "head.weight": sd["classifier.weight"], "head.bias": sd["classifier.bias"]}
    state |= official_blocks(sd, "videomae.encoder.layer", "blocks", hf.config.num_hidden_layers)
    src, dst = ("fc_norm", "fc_norm") if hf.config.use_mean_pooling else ("videomae.layernorm", "norm")
    state |= {f"{dst}.{p}": sd[f"{src}.{p}"] for p in ("weight", "bias")}
    return {k: v.clone() for k, v in state.items()}


def fine_tuned_hf(mean_pooling: bool) -> VideoMAEForVideoClassification:
    """A random fine-tuned model with the official LayerNorm eps (1e-6, fc_norm's too)."""
    hf = randomized(VideoMAEForVideoClassification(VideoMAEConfig(**{**OFFICIAL, "use_mean_pooling": mean_pooling,
                                                                     "num_labels": 7})))
    if mean_pooling:
        hf.fc_norm.eps = 1e-6
    return hf


@pytest.mark.parametrize("mean_pooling", [True, False])
def test_fine_tuned_layout_converts_the_encoder(mean_pooling):
    """modeling_finetune.py keys: patch_embed, blocks, norm or fc_norm, head (dropped)."""
    hf = fine_tuned_hf(mean_pooling)
    converted = convert(official_fine_tuned(hf), HEADS)
    assert converted.metadata["encoder_only"]
    assert set(converted.metadata["dropped_keys"]) == {"head.bias", "head.weight"}
    model = build_model(converted.config)
    model.load_state_dict(converted.state_dict, strict=False)
    video, pixel_values = clips()
    with torch.no_grad():
        encoded, _ = model.eval().encode({"video": video}, "video")
        reference = hf.videomae(pixel_values).last_hidden_state
    assert max_error(encoded, reference, f"fine-tuned (fc_norm={mean_pooling}) features") <= bound(reference, hf.config)


def test_fine_tuned_fc_norm_is_kept_as_the_norm_of_the_pooled_feature():
    """The converted model's pooled features (model.features, and the fine-tuning Classifier's
    fc_norm) are the source's fc_norm(mean over tokens), within float32 rounding."""
    hf = fine_tuned_hf(mean_pooling=True)
    converted = convert(official_fine_tuned(hf), HEADS)
    assert "Encoder.pool_norm_eps = 1e-06" in converted.config and "Encoder.final_norm = False" in converted.config
    model = build_model(converted.config).eval()
    model.load_state_dict(converted.state_dict, strict=False)
    video, pixel_values = clips()
    with torch.no_grad():
        reference = hf.fc_norm(hf.videomae(pixel_values).last_hidden_state.mean(dim=1))
        features = model.features({"video": video}, "video")
    # stages: patch projection, 2 blocks, pooling + fc_norm; longest sum: the C*t*p*p = 384 patch values
    assert max_error(features, reference, "fine-tuned pooled features") <= bound(reference, hf.config)
    classifier = Classifier(model, "video", num_classes=7)
    assert torch.equal(classifier.fc_norm.weight, hf.fc_norm.weight) and classifier.encoder.pool_norm is None


def test_missing_and_unexpected_official_keys_are_listed():
    state = official_pretraining(official_hf())
    del state["decoder.blocks.0.attn.v_bias"]
    state["encoder.blocks.0.attn.scale"] = torch.zeros(4, 1, 1)  # v2 cos_attn, not supported
    with pytest.raises(ValueError, match=r"VideoMAE checkpoint.*missing keys \[decoder\.blocks\.0\.attn\.v_bias\]"
                                         r".*unexpected keys \[encoder\.blocks\.0\.attn\.scale\]"):
        convert(state, HEADS)
