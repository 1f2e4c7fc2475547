"""HF transformers ViTMAE -> mmmae: the converted model reproduces the HF model numerically."""

import pytest
import torch
from transformers import ViTMAEConfig, ViTMAEForPreTraining, ViTMAEModel

from mmmae.masking.rng import MaskRNG
from mmmae.tokenizers.patches import IMAGENET_MEAN, IMAGENET_STD
from mmmae.types import MaskPlan
from mmmae.zoo.convert import convert_checkpoint
from mmmae.zoo.convert.hf_vitmae import convert
from mmmae.zoo.pretrained import build_model, from_pretrained
from tests.float32_bound import mse_bound, rounding_bound, vit_stages

SMALL = dict(image_size=32, patch_size=8, num_channels=3, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
             intermediate_size=256, decoder_hidden_size=32, decoder_num_hidden_layers=1, decoder_num_attention_heads=4,
             decoder_intermediate_size=128, mask_ratio=0.75)
NUM_TOKENS = 16


def randomized(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every parameter random (biases, LayerNorm shifts and the stored position tables too), so a
    dropped or misplaced tensor shows in the outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            p.copy_(1.0 + 0.2 * noise if "norm" in name and name.endswith("weight") else 0.1 * noise)
    return model.eval()


def images(batch: int = 2, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """[0, 1] images (B, C, H, W) for mmmae and the same standardised for HF."""
    image = torch.rand(batch, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    mean, std = (torch.tensor(s).view(1, 3, 1, 1) for s in (IMAGENET_MEAN, IMAGENET_STD))
    return image, (image - mean) / std


def noise_and_plan(batch: int = 2, seed: int = 2) -> tuple[torch.Tensor, MaskPlan]:
    """HF's masking noise and the plan it implies: keep the int(N * 0.25) lowest, sorted."""
    noise = torch.rand(batch, NUM_TOKENS, generator=torch.Generator().manual_seed(seed))
    order = noise.argsort(dim=1)
    keep = int(NUM_TOKENS * (1 - SMALL["mask_ratio"]))
    return noise, MaskPlan(keep=order[:, :keep].sort(dim=1).values, predict=order[:, keep:].sort(dim=1).values)


def converted_model(state: dict, options: dict):
    converted = convert(state, options)
    model = build_model(converted.config)
    model.load_state_dict(converted.state_dict, strict=not converted.metadata["encoder_only"])
    return converted, model.eval()


def mmmae_forward(model, image: torch.Tensor, plan: MaskPlan):
    """The converted model's pretraining forward with the given plan (not its masker's)."""
    model.modalities["image"].masker = lambda tokens, batch, rng: plan
    with torch.no_grad():
        return model({"image": image}, MaskRNG.seeded(0))


def in_plan_order(hidden: torch.Tensor, noise: torch.Tensor, keep: int) -> torch.Tensor:
    """HF's visible tokens (in noise order) rearranged to ascending token index, as mmmae keeps them."""
    order = noise.argsort(dim=1)[:, :keep].argsort(dim=1)
    return torch.gather(hidden, 1, order[..., None].expand(-1, -1, hidden.shape[-1]))


def max_error(a: torch.Tensor, b: torch.Tensor, what: str) -> float:
    assert a.shape == b.shape, f"{what}: shapes {tuple(a.shape)} vs {tuple(b.shape)}"
    error = (a - b).abs().max().item()
    print(f"{what}: max abs error {error:.2e}")
    return error


def bound(reference: torch.Tensor, config: ViTMAEConfig, decoder: bool = False) -> float:
    """float32 rounding bound of encoder outputs or, with `decoder`, of predictions: stages from
    the depths; terms: the longest sum, a patch's C*p*p values, a width, an MLP's hidden size or
    the token count (class token included)."""
    sums = [config.num_channels * config.patch_size ** 2, config.hidden_size, config.intermediate_size,
            (config.image_size // config.patch_size) ** 2 + 1]
    sums += [config.decoder_hidden_size, config.decoder_intermediate_size] if decoder else []
    stages = vit_stages(config.num_hidden_layers, config.decoder_num_hidden_layers if decoder else None)
    return rounding_bound(reference, stages, max(sums))


def loss_bound(out, logits: torch.Tensor, loss: torch.Tensor, config: ViTMAEConfig) -> float:
    """The loss's bound from its predictions' (`bound`) and its targets' (standardised, then
    normalised over a patch's P values: 2 stages of P terms), over the B*Q*P squares averaged."""
    difference = bound(logits, config, decoder=True) + rounding_bound(out.tokens.target, 2, logits.shape[-1])
    return mse_bound(loss, difference, logits.numel())


def hub_names(state: dict) -> dict:
    """The transformers 4 names the Hub checkpoints use."""
    renames = (("vit.layers.", "vit.encoder.layer."), ("attention.o_proj", "attention.output.dense"),
               ("attention.q_proj", "attention.attention.query"), ("attention.k_proj", "attention.attention.key"),
               ("attention.v_proj", "attention.attention.value"), ("mlp.fc1", "intermediate.dense"),
               ("mlp.fc2", "output.dense"))
    renamed = {}
    for key, value in state.items():
        for old, new in renames:
            key = key.replace(old, new)
        renamed[key] = value
    return renamed


@pytest.mark.parametrize("names,norm_pix_loss", [("transformers5", True), ("hub", False)])
def test_pretraining_parity(names, norm_pix_loss):
    hf = randomized(ViTMAEForPreTraining(ViTMAEConfig(**SMALL, norm_pix_loss=norm_pix_loss)))
    state = hf.state_dict() if names == "transformers5" else hub_names(hf.state_dict())
    converted, model = converted_model(state, hf.config.to_dict())
    image, pixel_values = images()
    noise, plan = noise_and_plan()
    with torch.no_grad():
        reference = hf(pixel_values, noise=noise)
        hidden = hf.vit(pixel_values, noise=noise).last_hidden_state
    output = mmmae_forward(model, image, plan)
    out = output.outputs["image"]
    keep = plan.keep.shape[1]
    assert torch.equal(reference.mask.bool(), torch.zeros_like(reference.mask, dtype=torch.bool).scatter(
        1, plan.predict, True)), "the plan is HF's mask"
    assert max_error(out.cls, hidden[:, 0], f"{names}: encoder class token") <= bound(hidden, hf.config)
    assert max_error(out.encoded, in_plan_order(hidden[:, 1:], noise, keep), f"{names}: encoder tokens") <= bound(
        hidden, hf.config)
    logits = torch.gather(reference.logits, 1, plan.predict[..., None].expand(-1, -1, reference.logits.shape[-1]))
    assert max_error(out.prediction, logits, f"{names}: decoder predictions (masked)") <= bound(
        logits, hf.config, decoder=True)
    assert max_error(output.loss, reference.loss, f"{names}: loss (norm_pix_loss={norm_pix_loss})") <= loss_bound(
        out, logits, reference.loss, hf.config)
    assert not converted.state_dict["modalities.image.embedding"].any()


def test_encoder_only_model_and_full_image_features():
    hf = randomized(ViTMAEModel(ViTMAEConfig(**{**SMALL, "mask_ratio": 0.0})))
    converted, model = converted_model(hf.state_dict(), hf.config.to_dict())
    assert converted.metadata["encoder_only"]
    image, pixel_values = images()
    noise = torch.arange(NUM_TOKENS, dtype=torch.float).expand(2, -1)  # keeps every token in order
    with torch.no_grad():
        hidden = hf(pixel_values, noise=noise).last_hidden_state
        encoded, _ = model.encode({"image": image}, "image")
    assert max_error(encoded, hidden[:, 1:], "ViTMAEModel all tokens") <= bound(hidden, hf.config)


def test_runs_at_another_resolution_with_resampled_tables():
    hf = randomized(ViTMAEForPreTraining(ViTMAEConfig(**SMALL)))
    _, model = converted_model(hf.state_dict(), hf.config.to_dict())
    out = mmmae_forward(model, torch.rand(1, 3, 48, 48), MaskPlan(
        keep=torch.arange(0, 36, 4).expand(1, -1), predict=torch.arange(1, 36, 4).expand(1, -1))).outputs["image"]
    assert out.tokens.grid == (6, 6) and out.prediction.shape == (1, 9, 8 * 8 * 3)
    assert torch.isfinite(out.prediction).all()


def test_missing_and_unexpected_keys_are_listed():
    hf = randomized(ViTMAEForPreTraining(ViTMAEConfig(**SMALL)))
    state = hf.state_dict()
    del state["vit.layers.1.attention.k_proj.weight"]
    state["decoder.extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"missing keys \[vit\.layers\.1\.attention\.k_proj\.weight\]"
                                         r".*unexpected keys \[decoder\.extra\.weight\]"):
        convert(state, hf.config.to_dict())


def test_image_size_that_disagrees_with_the_table_is_refused():
    hf = ViTMAEForPreTraining(ViTMAEConfig(**SMALL))
    with pytest.raises(ValueError, match="image_size"):
        convert(hf.state_dict(), {**hf.config.to_dict(), "image_size": 48})


def test_hf_directory_through_convert_checkpoint_and_from_pretrained(tmp_path):
    hf = randomized(ViTMAEForPreTraining(ViTMAEConfig(**SMALL, norm_pix_loss=True)))
    hf.save_pretrained(tmp_path / "hf")
    convert_checkpoint("hf-vitmae", tmp_path / "hf", tmp_path / "mmmae")
    model = from_pretrained(tmp_path / "mmmae")
    image, pixel_values = images()
    noise, plan = noise_and_plan()
    with torch.no_grad():
        reference = hf(pixel_values, noise=noise)
    output = mmmae_forward(model, image, plan)
    logits = torch.gather(reference.logits, 1, plan.predict[..., None].expand(-1, -1, reference.logits.shape[-1]))
    assert max_error(output.outputs["image"].prediction, logits, "from_pretrained: predictions") <= bound(
        logits, hf.config, decoder=True)
    assert max_error(output.loss, reference.loss, "from_pretrained: loss") <= loss_bound(
        output.outputs["image"], logits, reference.loss, hf.config)


def test_head_counts_come_from_the_config_or_options_never_a_guess():
    """config.json states the counts; a bare state dict of non-standard widths asks for them."""
    hf = randomized(ViTMAEForPreTraining(ViTMAEConfig(**SMALL)))
    state = hf.state_dict()
    with pytest.raises(ValueError, match=r"the encoder is 64 wide.*--option heads=N"):
        convert(state, {})
    with pytest.raises(ValueError, match=r"the decoder is 32 wide.*--option decoder_heads=N"):
        convert(state, {"heads": 4})
    from_config = convert(state, hf.config.to_dict())
    assert not any("heads" in note for note in from_config.metadata["notes"])
    given = convert(state, {"heads": 2, "decoder_heads": 2, "num_attention_heads": 4})
    assert "Encoder.heads = 2" in given.config and "image/MaskTokenDecoder.heads = 2" in given.config
    assert "Encoder.heads = 4" in from_config.config and "image/MaskTokenDecoder.heads = 4" in from_config.config
