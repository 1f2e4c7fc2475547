"""The fine-tuning classifier: what it copies, its layer ids, layer-decay groups and drop path rates."""

import pytest
import torch

from mmmae.config import parse_config
from mmmae.eval.classifier import Classifier
from mmmae.eval.layer_decay import layer_decay_groups
from mmmae.model import MaskedAutoencoder
from tests.conftest import MICRO_GIN


def micro_model(*params: str) -> MaskedAutoencoder:
    parse_config([MICRO_GIN], params)
    torch.manual_seed(0)
    return MaskedAutoencoder()


def test_groups_scale_each_layer_by_decay_to_the_depth_left():
    classifier = Classifier(micro_model(), "video", num_classes=3)  # 2 blocks: layers 0 .. 3
    decay, lr = 0.5, 1e-3
    groups = layer_decay_groups(classifier, lr, weight_decay=0.05, decay=decay)
    scale_of = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    decay_of = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    names = dict(classifier.named_parameters())
    assert sorted(scale_of) == sorted(id(p) for p in names.values())  # every parameter exactly once
    assert sum(len(g["params"]) for g in groups) == len(names)
    expected = {"modality.tokenizer.proj.weight": decay ** 3, "modality.embedding": decay ** 3,
                "encoder.blocks.0.attn.qkv.weight": decay ** 2, "encoder.blocks.1.mlp.0.bias": decay,
                "encoder.norm.weight": 1.0, "fc_norm.bias": 1.0, "head.weight": 1.0}
    for name, scale in expected.items():
        assert scale_of[id(names[name])] == pytest.approx(scale), name
    assert all(g["lr"] == pytest.approx(lr * g["lr_scale"]) for g in groups)
    assert decay_of[id(names["head.weight"])] == decay_of[id(names["encoder.blocks.0.attn.qkv.weight"])] == 0.05
    assert decay_of[id(names["head.bias"])] == decay_of[id(names["modality.embedding"])] == 0.0
    assert [g["layer"] for g in groups] == sorted(g["layer"] for g in groups)


def test_modality_specific_blocks_come_first_and_other_modalities_are_left_out():
    model = micro_model("Encoder.depth = 3", "Encoder.specific_layers = 1")
    classifier = Classifier(model, "video", num_classes=3)
    assert classifier.num_layers == 3
    assert classifier.layer_id("encoder.specific.video.0.attn.qkv.weight") == 1
    assert classifier.layer_id("encoder.blocks.0.attn.qkv.weight") == 2
    assert classifier.layer_id("encoder.blocks.1.norm1.weight") == 3
    assert classifier.layer_id("head.bias") == 4 and classifier.layer_id("modality.tokenizer.proj.bias") == 0
    assert not any("decoder" in name or "masker" in name for name, _ in classifier.named_parameters())


def test_drop_path_rises_linearly_on_the_copy_only():
    model = micro_model("Encoder.depth = 3")
    classifier = Classifier(model, "video", num_classes=3)
    classifier.set_drop_path(0.2)
    assert [b.drop_path.rate for b in classifier.blocks()] == pytest.approx([0.0, 0.1, 0.2])
    assert [b.drop_path.rate for b in model.encoder.blocks] == [0.0, 0.0, 0.0]


def test_the_copy_starts_from_the_model_and_leaves_it_untouched():
    model = micro_model()
    classifier = Classifier(model, "video", num_classes=4)
    clips = torch.rand(2, 3, 4, 16, 16)
    assert classifier(clips).shape == (2, 4)
    assert torch.equal(classifier.encoder.blocks[0].attn.qkv.weight, model.encoder.blocks[0].attn.qkv.weight)
    with torch.no_grad():
        classifier.encoder.blocks[0].attn.qkv.weight.add_(1.0)
    assert not torch.equal(classifier.encoder.blocks[0].attn.qkv.weight, model.encoder.blocks[0].attn.qkv.weight)
    # the head starts near zero (VideoMAE's init_scale), so the first logits are nearly uniform
    assert classifier.head.weight.abs().max() < 1e-3 and classifier(clips).abs().max() < 1e-2
