"""Encoder.pool: the mean over valid tokens, through the pool norm (a converted fc_norm) when set."""

import torch
import torch.nn.functional as F

from mmmae.eval.classifier import Classifier
from mmmae.nn.encoder import Encoder
from mmmae.types import mean_tokens
from mmmae.zoo.pretrained import build_model


def test_pool_is_the_masked_mean_without_a_pool_norm_and_normed_with_one():
    encoded = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(0))
    valid = torch.tensor([[True] * 5, [True, True, False, False, False]])
    plain = Encoder(["video"], dim=8, depth=1, heads=2)
    assert plain.pool_norm is None and torch.equal(plain.pool(encoded, valid), mean_tokens(encoded, valid))
    normed = Encoder(["video"], dim=8, depth=1, heads=2, pool_norm_eps=1e-5)
    with torch.no_grad():
        normed.pool_norm.weight.uniform_(0.5, 1.5)
        normed.pool_norm.bias.uniform_(-0.1, 0.1)
    expected = F.layer_norm(mean_tokens(encoded, valid), (8,), normed.pool_norm.weight, normed.pool_norm.bias, 1e-5)
    assert torch.equal(normed.pool(encoded, valid), expected)
    assert {"pool_norm.weight", "pool_norm.bias"} <= set(normed.state_dict())


def test_the_pool_norm_is_frozen_for_pretraining_and_trained_by_the_fine_tuning_classifier():
    """Pretraining never uses it (DDP would wait for its gradients); the Classifier's fc_norm is it."""
    config = """\
Encoder.dim = 16
Encoder.depth = 1
Encoder.heads = 2
Encoder.pool_norm_eps = 1e-6
video/TubeletTokenizer.dim = 16
video/TubeletTokenizer.tubelet = 2
video/TubeletTokenizer.patch = 8
video/MaskTokenDecoder.dim = 8
video/MaskTokenDecoder.depth = 1
video/MaskTokenDecoder.heads = 2
video/Modality.name = 'video'
video/Reconstruction.modality = 'video'
video/Modality.tokenizer = @video/TubeletTokenizer()
video/Modality.masker = @video/TubeMasking()
video/Modality.decoder = @video/MaskTokenDecoder
MaskedAutoencoder.encoder = @Encoder
MaskedAutoencoder.modalities = [@video/Modality()]
MaskedAutoencoder.objectives = [@video/Reconstruction()]
pretrain.model = @MaskedAutoencoder
"""
    model = build_model(config)
    assert not any(p.requires_grad for p in model.encoder.pool_norm.parameters())
    classifier = Classifier(model, "video", num_classes=3)
    assert classifier.fc_norm.weight.requires_grad and classifier.encoder.pool_norm is None
    assert torch.equal(classifier.fc_norm.weight, model.encoder.pool_norm.weight)
