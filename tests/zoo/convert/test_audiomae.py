"""AudioMAE -> mmmae: the converted encoder (and a plain decoder) reproduce a reference forward
written from AudioMAE's equations; the released Swin decoder is dropped and listed."""

import pytest
import torch
import torch.nn.functional as F

from mmmae.masking.rng import MaskRNG
from mmmae.nn.pos_embed import sincos_2d
from mmmae.tokenizers.audio import AUDIOMAE_AUDIOSET_NORM as NORM
from mmmae.types import MaskPlan
from mmmae.zoo.convert.audiomae import convert
from mmmae.zoo.pretrained import build_model
from tests.float32_bound import mse_bound, rounding_bound, vit_stages

DIM, DEPTH, HEADS, DEC_DIM, DEC_DEPTH, DEC_HEADS, PATCH = 64, 2, 4, 32, 1, 4, 16
LENGTH, BINS = 128, 64
GRID = (LENGTH // PATCH, BINS // PATCH)
NUM_TOKENS = GRID[0] * GRID[1]
# the longest sums, for the rounding bounds: a patch's p*p values, a width, an MLP's 4x hidden size, the tokens
ENCODER_TERMS = max(PATCH * PATCH, DIM, 4 * DIM, NUM_TOKENS + 1)
DECODER_TERMS = max(ENCODER_TERMS, DEC_DIM, 4 * DEC_DIM)
OPTIONS = {"heads": HEADS, "decoder_heads": DEC_HEADS, "target_length": LENGTH, "num_mel_bins": BINS}


def table(dim: int) -> torch.Tensor:
    """AudioMAE's stored table: 2-D sin-cos over (time, frequency), frequency half first, zero class row."""
    hw = sincos_2d(*GRID, dim)
    swapped = torch.cat([hw[:, dim // 2:], hw[:, : dim // 2]], dim=1)
    return torch.cat([torch.zeros(1, dim, dtype=swapped.dtype), swapped]).float()[None]


def block_shapes(prefix: str, dim: int, swin: bool = False) -> dict[str, tuple]:
    shapes = {f"{prefix}attn.qkv.weight": (3 * dim, dim), f"{prefix}attn.qkv.bias": (3 * dim,),
              f"{prefix}attn.proj.weight": (dim, dim), f"{prefix}attn.proj.bias": (dim,),
              f"{prefix}mlp.fc1.weight": (4 * dim, dim), f"{prefix}mlp.fc1.bias": (4 * dim,),
              f"{prefix}mlp.fc2.weight": (dim, 4 * dim), f"{prefix}mlp.fc2.bias": (dim,)}
    shapes |= {f"{prefix}{n}.{p}": (dim,) for n in ("norm1", "norm2") for p in ("weight", "bias")}
    if swin:
        shapes |= {f"{prefix}attn.relative_position_bias_table": (49, 16),
                   f"{prefix}attn.relative_position_index": (16, 16), f"{prefix}attn_mask": (2, 16, 16)}
    return shapes


def audiomae_state(decoder: str = "swin", seed: int = 0) -> dict:
    """A random state dict in AudioMAE's layout; decoder 'swin' (decoder_mode=1), 'plain' (0) or 'none'."""
    shapes = {"patch_embed.proj.weight": (DIM, 1, PATCH, PATCH), "patch_embed.proj.bias": (DIM,),
              "cls_token": (1, 1, DIM), "norm.weight": (DIM,), "norm.bias": (DIM,)}
    for i in range(DEPTH):
        shapes |= block_shapes(f"blocks.{i}.", DIM)
    if decoder != "none":
        shapes |= {"decoder_embed.weight": (DEC_DIM, DIM), "decoder_embed.bias": (DEC_DIM,),
                   "mask_token": (1, 1, DEC_DIM), "decoder_norm.weight": (DEC_DIM,), "decoder_norm.bias": (DEC_DIM,),
                   "decoder_pred.weight": (PATCH * PATCH, DEC_DIM), "decoder_pred.bias": (PATCH * PATCH,)}
        for j in range(DEC_DEPTH if decoder == "plain" else 2):
            shapes |= block_shapes(f"decoder_blocks.{j}.", DEC_DIM, swin=decoder == "swin")
    g = torch.Generator().manual_seed(seed)
    state = {k: (1.0 + 0.2 * torch.randn(s, generator=g)) if "norm" in k and k.endswith("weight")
             else 0.1 * torch.randn(s, generator=g) for k, s in shapes.items()}
    state["pos_embed"] = table(DIM)
    if decoder != "none":
        state["decoder_pos_embed"] = table(DEC_DIM)
    return state


def block(state: dict, prefix: str, x: torch.Tensor, heads: int) -> torch.Tensor:
    """timm Block: fused qkv with bias, LayerNorm eps 1e-6, exact GELU."""
    def linear(name, y):
        return y @ state[f"{prefix}{name}.weight"].T + state[f"{prefix}{name}.bias"]

    def norm(name, y):
        return F.layer_norm(y, y.shape[-1:], state[f"{prefix}{name}.weight"], state[f"{prefix}{name}.bias"], 1e-6)

    batch, length, dim = x.shape
    q, k, v = linear("attn.qkv", norm("norm1", x)).reshape(batch, length, 3, heads, -1).permute(2, 0, 3, 1, 4)
    attn = ((q @ k.transpose(-2, -1)) * (dim // heads) ** -0.5).softmax(dim=-1)
    x = x + linear("attn.proj", (attn @ v).transpose(1, 2).reshape(batch, length, dim))
    return x + linear("mlp.fc2", F.gelu(linear("mlp.fc1", norm("norm2", x))))


def reference(state: dict, spectrogram: torch.Tensor, ids_keep: torch.Tensor, decoder: bool, pooled: bool = False):
    """AudioMAE's forward_encoder / forward_decoder (decoder_mode=0) on the normalised (B, 1, T, F)
    spectrogram with kept ids in any order: (class output, tokens in ids_keep order, predictions (B, N, P));
    with `pooled`, the fine-tuned model's (models_vit.py, global_pool) feature before its head: (B, D)."""
    x = F.conv2d(spectrogram, state["patch_embed.proj.weight"], state["patch_embed.proj.bias"], stride=PATCH)
    x = x.flatten(2).transpose(1, 2) + state["pos_embed"][:, 1:]
    x = torch.gather(x, 1, ids_keep[..., None].expand(-1, -1, DIM))
    x = torch.cat([(state["cls_token"] + state["pos_embed"][:, :1]).expand(x.shape[0], -1, -1), x], dim=1)
    for i in range(DEPTH):
        x = block(state, f"blocks.{i}.", x, HEADS)
    if pooled:  # mean over the patch tokens, then fc_norm
        return F.layer_norm(x[:, 1:].mean(dim=1), (DIM,), state["fc_norm.weight"], state["fc_norm.bias"], 1e-6)
    x = F.layer_norm(x, (DIM,), state["norm.weight"], state["norm.bias"], 1e-6)
    if not decoder:
        return x[:, 0], x[:, 1:], None
    y = x @ state["decoder_embed.weight"].T + state["decoder_embed.bias"]
    full = state["mask_token"].expand(y.shape[0], NUM_TOKENS, -1).clone()
    full.scatter_(1, ids_keep[..., None].expand(-1, -1, DEC_DIM), y[:, 1:])
    full = torch.cat([y[:, :1], full], dim=1) + state["decoder_pos_embed"]
    for j in range(DEC_DEPTH):
        full = block(state, f"decoder_blocks.{j}.", full, DEC_HEADS)
    full = F.layer_norm(full, (DEC_DIM,), state["decoder_norm.weight"], state["decoder_norm.bias"], 1e-6)
    return x[:, 0], x[:, 1:], (full @ state["decoder_pred.weight"].T + state["decoder_pred.bias"])[:, 1:]


def bound(reference: torch.Tensor, decoder: bool = False) -> float:
    """float32 rounding bound of encoder outputs (tokens or pooled feature) or, with `decoder`, of predictions."""
    if decoder:
        return rounding_bound(reference, vit_stages(DEPTH, DEC_DEPTH), DECODER_TERMS)
    return rounding_bound(reference, vit_stages(DEPTH), ENCODER_TERMS)


def max_error(a: torch.Tensor, b: torch.Tensor, what: str) -> float:
    assert a.shape == b.shape, f"{what}: shapes {tuple(a.shape)} vs {tuple(b.shape)}"
    error = (a - b).abs().max().item()
    print(f"{what}: max abs error {error:.2e}")
    return error


def run(decoder: str):
    state = audiomae_state(decoder)
    converted = convert(state, OPTIONS)
    model = build_model(converted.config)
    model.load_state_dict(converted.state_dict, strict=not converted.metadata["encoder_only"])
    fbank = NORM.mean + 3 * torch.randn(2, LENGTH, BINS, generator=torch.Generator().manual_seed(1))
    order = torch.rand(2, NUM_TOKENS, generator=torch.Generator().manual_seed(2)).argsort(dim=1)
    ids_keep, plan = order[:, :6], MaskPlan(keep=order[:, :6].sort(1).values, predict=order[:, 6:].sort(1).values)
    model.eval().modalities["audio"].masker = lambda tokens, batch, rng: plan
    with torch.no_grad():
        output = model({"audio": fbank}, MaskRNG.seeded(0))
    spectrogram = ((fbank - NORM.mean) / (2 * NORM.std))[:, None]
    expected = reference(state, spectrogram, ids_keep, decoder == "plain")
    return converted, output, expected, ids_keep, plan, spectrogram


@pytest.mark.parametrize("decoder", ["swin", "plain"])
def test_encoder_parity(decoder):
    converted, output, (cls, tokens, _), ids_keep, _, _ = run(decoder)
    out = output.outputs["audio"]
    order = ids_keep.argsort(dim=1)[..., None].expand(-1, -1, DIM)
    allowed = bound(torch.cat([cls[:, None], tokens], dim=1))
    assert max_error(out.cls, cls, f"{decoder} decoder: encoder class token") <= allowed
    assert max_error(out.encoded, torch.gather(tokens, 1, order), f"{decoder} decoder: encoder tokens") <= allowed


def test_plain_decoder_parity():
    converted, output, (_, _, pred), _, plan, spectrogram = run("plain")
    assert not converted.metadata["encoder_only"] and converted.metadata["dropped_keys"] == []
    masked = torch.gather(pred, 1, plan.predict[..., None].expand(-1, -1, pred.shape[-1]))
    assert max_error(output.outputs["audio"].prediction, masked, "plain decoder: predictions (masked)") <= bound(
        masked, decoder=True)
    patches = spectrogram.reshape(2, 1, GRID[0], PATCH, GRID[1], PATCH)
    target = torch.einsum("nchpwq->nhwpqc", patches).reshape(2, NUM_TOKENS, PATCH * PATCH)
    target = (target - target.mean(dim=-1, keepdim=True)) / (target.var(dim=-1, keepdim=True) + 1e-6) ** 0.5
    mask = torch.zeros(2, NUM_TOKENS).scatter(1, plan.predict, 1.0)
    loss = (((pred - target) ** 2).mean(dim=-1) * mask).sum() / mask.sum()
    # targets: standardised, then normalised over a patch's p*p values (2 stages of p*p terms)
    difference = bound(masked, decoder=True) + rounding_bound(target, 2, PATCH * PATCH)
    assert max_error(output.loss, loss, "plain decoder: loss (norm_pix_loss)") <= mse_bound(loss, difference,
                                                                                           masked.numel())


def test_swin_decoder_is_dropped_and_listed():
    converted = convert(audiomae_state("swin"), OPTIONS)
    meta = converted.metadata
    assert meta["encoder_only"]
    assert "decoder_blocks.1.attn.relative_position_bias_table" in meta["dropped_keys"]
    assert {"mask_token", "decoder_pred.weight", "decoder_pos_embed"} <= set(meta["dropped_keys"])
    assert any("relative_position_bias_table" in p for p in meta["dropped_patterns"])
    assert not any(k.startswith("modalities.audio.decoder.") for k in converted.state_dict)


def test_runs_at_another_audio_length():
    converted = convert(audiomae_state("none"), OPTIONS)
    config = converted.config.replace(f"target_length = {LENGTH}", f"target_length = {2 * LENGTH}")
    model = build_model(config).eval()
    model.load_state_dict(converted.state_dict, strict=False)
    with torch.no_grad():
        encoded, _ = model.encode({"audio": torch.randn(1, 2 * LENGTH, BINS)}, "audio")
    assert encoded.shape == (1, 2 * NUM_TOKENS, DIM) and torch.isfinite(encoded).all()


def test_grid_that_disagrees_with_the_table_is_refused():
    with pytest.raises(ValueError, match="target_length"):
        convert(audiomae_state("none"), {**OPTIONS, "target_length": 1024})


def test_fine_tuned_fc_norm_is_kept_as_the_norm_of_the_pooled_feature():
    """A global-pool fine-tuned checkpoint (fc_norm and head, no norm): model.features are the
    source's fc_norm(mean over patch tokens); only the classifier head is dropped."""
    g = torch.Generator().manual_seed(3)
    state = {k: v for k, v in audiomae_state("none").items() if not k.startswith("norm.")}
    state |= {"fc_norm.weight": 1.0 + 0.2 * torch.randn(DIM, generator=g), "fc_norm.bias": 0.1 * torch.randn(DIM,
              generator=g), "head.weight": 0.1 * torch.randn(5, DIM, generator=g), "head.bias": torch.zeros(5)}
    converted = convert(state, OPTIONS)
    assert converted.metadata["dropped_keys"] == ["head.bias", "head.weight"]
    model = build_model(converted.config).eval()
    model.load_state_dict(converted.state_dict, strict=False)
    fbank = NORM.mean + 3 * torch.randn(2, LENGTH, BINS, generator=torch.Generator().manual_seed(1))
    spectrogram = ((fbank - NORM.mean) / (2 * NORM.std))[:, None]
    expected = reference(state, spectrogram, torch.arange(NUM_TOKENS).expand(2, -1), False, pooled=True)
    with torch.no_grad():
        features = model.features({"audio": fbank}, "audio")
    # stages: patch projection, 2 blocks, pooling + fc_norm; longest sum: the p*p = 256 patch values
    assert max_error(features, expected, "fine-tuned pooled features") <= bound(expected)
