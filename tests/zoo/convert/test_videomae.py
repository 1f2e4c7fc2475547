"""Official VideoMAE v1 / v2 checkpoints -> mmmae, checked against the HF model they were made from.

The official state dicts are written here key by key from a random HF model (the inverse of
HF's conversion script, independent of the converter's own mapping), with the official key
names and shapes: qkv without bias plus q_bias / v_bias, LayerNorm eps 1e-6 everywhere.
"""

import argparse

import pytest
import torch
from safetensors.torch import save_file
from transformers import VideoMAEConfig, VideoMAEForPreTraining, VideoMAEModel

from mmmae.zoo.convert import convert_checkpoint
from mmmae.zoo.convert.videomae import convert
from mmmae.zoo.pretrained import build_model, from_pretrained
from tests.zoo.convert.test_hf_videomae import (SMALL, TOLERANCE, bool_mask, check_parity, clips, max_error,
                                                mmmae_forward, randomized)

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
                     "tubelet 1 / patch 16 logits") <= TOLERANCE


def test_heads_default_by_width_with_a_note():
    converted = convert(official_pretraining(official_hf()), {"decoder_heads": 4})
    assert "Encoder.heads = 1" in converted.config  # 64 // 64: not a released width
    assert any("heads=1 assumed" in note for note in converted.metadata["notes"])
    with pytest.raises(ValueError, match="--option decoder_heads="):  # 32 wide: no default
        convert(official_pretraining(official_hf()), {})


@pytest.mark.parametrize("mean_pooling", [True, False])
def test_fine_tuned_layout_converts_the_encoder(mean_pooling):
    """modeling_finetune.py keys: patch_embed, blocks, norm or fc_norm, head (dropped)."""
    hf = randomized(VideoMAEModel(VideoMAEConfig(**{**OFFICIAL, "use_mean_pooling": mean_pooling})))
    sd = hf.state_dict()
    state = {"patch_embed.proj.weight": sd["embeddings.patch_embeddings.projection.weight"],
             "patch_embed.proj.bias": sd["embeddings.patch_embeddings.projection.bias"],
             "head.weight": torch.randn(7, 64), "head.bias": torch.randn(7)}
    state |= official_blocks(sd, "encoder.layer", "blocks", 2)
    state |= {"fc_norm.weight": torch.ones(64), "fc_norm.bias": torch.zeros(64)} if mean_pooling else \
        {"norm.weight": sd["layernorm.weight"], "norm.bias": sd["layernorm.bias"]}
    converted = convert(state, HEADS)
    assert converted.metadata["encoder_only"]
    assert set(converted.metadata["dropped_keys"]) == {"head.bias", "head.weight"} | (
        {"fc_norm.bias", "fc_norm.weight"} if mean_pooling else set())
    model = build_model(converted.config)
    model.load_state_dict(converted.state_dict, strict=False)
    video, pixel_values = clips()
    with torch.no_grad():
        encoded, _ = model.eval().encode({"video": video}, "video")
        reference = hf(pixel_values).last_hidden_state
    assert max_error(encoded, reference, f"fine-tuned (fc_norm={mean_pooling}) features") <= TOLERANCE


def test_missing_and_unexpected_official_keys_are_listed():
    state = official_pretraining(official_hf())
    del state["decoder.blocks.0.attn.v_bias"]
    state["encoder.blocks.0.attn.scale"] = torch.zeros(4, 1, 1)  # v2 cos_attn, not supported
    with pytest.raises(ValueError, match=r"VideoMAE checkpoint.*missing keys \[decoder\.blocks\.0\.attn\.v_bias\]"
                                         r".*unexpected keys \[encoder\.blocks\.0\.attn\.scale\]"):
        convert(state, HEADS)
