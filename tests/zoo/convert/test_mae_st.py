"""MAE-ST -> mmmae: the converted model reproduces a reference forward written from MAE-ST's equations.

mae_st is not installed: state dicts are built here with its exact key layout and shapes, and
`reference` is MAE-ST's `forward_encoder` / `forward_decoder` restated in plain torch.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from mmmae.masking.rng import MaskRNG
from mmmae.types import MaskPlan
from mmmae.zoo.convert import convert_checkpoint
from mmmae.zoo.convert.mae_st import convert
from mmmae.zoo.pretrained import build_model, from_pretrained
from tests.float32_bound import mse_bound, rounding_bound, vit_stages

DIM, DEPTH, HEADS, DEC_DIM, DEC_DEPTH, DEC_HEADS = 64, 2, 4, 32, 1, 4
FRAMES, SIZE, TUBELET, PATCH, PRED_T_DIM = 4, 32, 2, 8, 2
GRID = (FRAMES // TUBELET, SIZE // PATCH, SIZE // PATCH)
NUM_TOKENS = math.prod(GRID)
# the longest sums, for the rounding bounds: a patch's C*t*p*p values, a width, an MLP's 4x hidden size, the tokens
ENCODER_TERMS = max(3 * TUBELET * PATCH * PATCH, DIM, 4 * DIM, NUM_TOKENS + 1)
DECODER_TERMS = max(ENCODER_TERMS, DEC_DIM, 4 * DEC_DIM)
MEAN, STD = 0.45, 0.225
OPTIONS = {"heads": HEADS, "decoder_heads": DEC_HEADS, "frames": FRAMES}


def block_shapes(prefix: str, dim: int) -> dict[str, tuple]:
    shapes = {f"{prefix}attn.{x}.weight": (dim, dim) for x in ("q", "k", "v", "proj")}
    shapes |= {f"{prefix}attn.{x}.bias": (dim,) for x in ("q", "k", "v", "proj")}
    shapes |= {f"{prefix}{n}.{p}": (dim,) for n in ("norm1", "norm2") for p in ("weight", "bias")}
    return shapes | {f"{prefix}mlp.fc1.weight": (4 * dim, dim), f"{prefix}mlp.fc1.bias": (4 * dim,),
                     f"{prefix}mlp.fc2.weight": (dim, 4 * dim), f"{prefix}mlp.fc2.bias": (dim,)}


def mae_st_state(separable: bool = True, cls: bool = True, decoder: bool = True, seed: int = 0) -> dict:
    """A random state dict in MAE-ST's layout (every tensor random, LayerNorm scales near 1)."""
    t, h, w = GRID
    shapes = {"patch_embed.proj.weight": (DIM, 3, TUBELET, PATCH, PATCH), "patch_embed.proj.bias": (DIM,),
              "norm.weight": (DIM,), "norm.bias": (DIM,)}
    for prefix, dim in [("", DIM)] + ([("decoder_", DEC_DIM)] if decoder else []):
        if separable:
            shapes |= {f"{prefix}pos_embed_spatial": (1, h * w, dim), f"{prefix}pos_embed_temporal": (1, t, dim)}
            shapes |= {f"{prefix}pos_embed_class": (1, 1, dim)} if cls else {}
        else:
            shapes[f"{prefix}pos_embed"] = (1, NUM_TOKENS + cls, dim)
        shapes |= {f"{prefix}cls_token": (1, 1, dim)} if cls else {}
    for i in range(DEPTH):
        shapes |= block_shapes(f"blocks.{i}.", DIM)
    if decoder:
        shapes |= {"decoder_embed.weight": (DEC_DIM, DIM), "decoder_embed.bias": (DEC_DIM,),
                   "mask_token": (1, 1, DEC_DIM), "decoder_norm.weight": (DEC_DIM,), "decoder_norm.bias": (DEC_DIM,),
                   "decoder_pred.weight": (PRED_T_DIM * TUBELET // FRAMES * PATCH * PATCH * 3, DEC_DIM),
                   "decoder_pred.bias": (PRED_T_DIM * TUBELET // FRAMES * PATCH * PATCH * 3,)}
        for j in range(DEC_DEPTH):
            shapes |= block_shapes(f"decoder_blocks.{j}.", DEC_DIM)
    g = torch.Generator().manual_seed(seed)
    return {k: (1.0 + 0.2 * torch.randn(s, generator=g)) if "norm" in k and k.endswith("weight")
            else 0.1 * torch.randn(s, generator=g) for k, s in shapes.items()}


def block(state: dict, prefix: str, x: torch.Tensor, heads: int) -> torch.Tensor:
    """video_vit.Block: x + attn(norm1(x)), x + mlp(norm2(x)); separate q, k, v; LayerNorm eps 1e-6."""
    def linear(name, y):
        return y @ state[f"{prefix}{name}.weight"].T + state[f"{prefix}{name}.bias"]

    def norm(name, y):
        return F.layer_norm(y, y.shape[-1:], state[f"{prefix}{name}.weight"], state[f"{prefix}{name}.bias"], 1e-6)

    batch, length, dim = x.shape
    y = norm("norm1", x)
    q, k, v = (linear(f"attn.{n}", y).reshape(batch, length, heads, -1).transpose(1, 2) for n in "qkv")
    attn = ((q @ k.transpose(-2, -1)) * (dim // heads) ** -0.5).softmax(dim=-1)
    x = x + linear("attn.proj", (attn @ v).transpose(1, 2).reshape(batch, length, dim))
    return x + linear("mlp.fc2", F.gelu(linear("mlp.fc1", norm("norm2", x))))


def pos_table(state: dict, prefix: str, separable: bool, cls: bool) -> torch.Tensor:
    """(1, [1 +] N, D): spatial tiled over time + temporal repeated over space, class row first."""
    if not separable:
        return state[f"{prefix}pos_embed"]
    t, h, w = GRID
    table = state[f"{prefix}pos_embed_spatial"].repeat(1, t, 1) + torch.repeat_interleave(
        state[f"{prefix}pos_embed_temporal"], h * w, dim=1)
    return torch.cat([state[f"{prefix}pos_embed_class"], table], dim=1) if cls else table


def reference(state: dict, video: torch.Tensor, ids_keep: torch.Tensor, separable: bool, cls: bool, decoder: bool,
              pooled: bool = False):
    """MAE-ST's forward on standardised video with the kept ids in `ids_keep` (any order):
    (class output or None, encoded tokens in ids_keep order, predictions (B, N, P) or None);
    with `pooled`, the fine-tuned model's (models_vit.py) feature before its head: (B, D)."""
    kernel = (TUBELET, PATCH, PATCH)
    x = F.conv3d(video, state["patch_embed.proj.weight"], state["patch_embed.proj.bias"], stride=kernel)
    x = x.flatten(2).transpose(1, 2)  # (B, T'H'W', D), t outermost
    pos = pos_table(state, "", separable, cls).expand(x.shape[0], -1, -1)
    patch_pos = pos[:, 1:] if cls else pos

    def gather(y, ids):
        return torch.gather(y, 1, ids[..., None].expand(-1, -1, y.shape[-1]))

    x = gather(x, ids_keep) + gather(patch_pos, ids_keep)
    if cls:
        x = torch.cat([(state["cls_token"] + pos[:, :1]), x], dim=1)
    for i in range(DEPTH):
        x = block(state, f"blocks.{i}.", x, HEADS)
    if pooled:  # mean over the patch tokens, then `norm`
        return F.layer_norm(x[:, 1:].mean(dim=1), (DIM,), state["norm.weight"], state["norm.bias"], 1e-6)
    x = F.layer_norm(x, (DIM,), state["norm.weight"], state["norm.bias"], 1e-6)
    cls_out, latent = (x[:, 0], x[:, 1:]) if cls else (None, x)
    if not decoder:
        return cls_out, latent, None
    y = latent @ state["decoder_embed.weight"].T + state["decoder_embed.bias"]
    full = state["mask_token"].expand(y.shape[0], NUM_TOKENS, -1).clone()
    full.scatter_(1, ids_keep[..., None].expand(-1, -1, DEC_DIM), y)
    if cls:
        full = torch.cat([state["decoder_cls_token"].expand(y.shape[0], -1, -1), full], dim=1)
    full = full + pos_table(state, "decoder_", separable, cls)
    for j in range(DEC_DEPTH):
        full = block(state, f"decoder_blocks.{j}.", full, DEC_HEADS)
    full = F.layer_norm(full, (DEC_DIM,), state["decoder_norm.weight"], state["decoder_norm.bias"], 1e-6)
    pred = full @ state["decoder_pred.weight"].T + state["decoder_pred.bias"]
    return cls_out, latent, pred[:, 1:] if cls else pred


def patchify(video: torch.Tensor) -> torch.Tensor:
    """MAE-ST's target: pred_t_dim frames at linspace(0, T - 1).long(), 'nctuhpwq -> nthwupqc' (u = 1)."""
    frames = video.index_select(2, torch.linspace(0, video.shape[2] - 1, PRED_T_DIM).long())
    t, h, w = GRID
    patches = frames.reshape(video.shape[0], 3, t, 1, h, PATCH, w, PATCH)
    return torch.einsum("nctuhpwq->nthwupqc", patches).reshape(video.shape[0], NUM_TOKENS, PATCH * PATCH * 3)


def reference_loss(video: torch.Tensor, pred: torch.Tensor, predict: torch.Tensor) -> torch.Tensor:
    """MAE-ST's forward_loss with norm_pix_loss on standardised video; mask 1 at `predict`."""
    target = patchify(video)
    target = (target - target.mean(dim=-1, keepdim=True)) / (target.var(dim=-1, keepdim=True) + 1e-6) ** 0.5
    mask = torch.zeros(pred.shape[:2]).scatter(1, predict, 1.0)
    return (((pred - target) ** 2).mean(dim=-1) * mask).sum() / mask.sum()


def masking(batch: int = 2, keep: int = 8, seed: int = 3) -> tuple[torch.Tensor, MaskPlan]:
    """MAE-ST's ids_keep (noise order) and the sorted plan mmmae uses for the same mask."""
    order = torch.rand(batch, NUM_TOKENS, generator=torch.Generator().manual_seed(seed)).argsort(dim=1)
    return order[:, :keep], MaskPlan(keep=order[:, :keep].sort(1).values, predict=order[:, keep:].sort(1).values)


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


def converted_model(state: dict, options: dict = OPTIONS):
    converted = convert(state, options)
    model = build_model(converted.config)
    model.load_state_dict(converted.state_dict, strict=not converted.metadata["encoder_only"])
    return converted, model.eval()


@pytest.mark.parametrize("separable,cls", [(True, True), (False, True), (True, False)])
def test_encoder_and_decoder_parity(separable, cls):
    state = mae_st_state(separable, cls)
    converted, model = converted_model(state)
    video = torch.rand(2, 3, FRAMES, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    ids_keep, plan = masking()
    cls_ref, latent, pred = reference(state, (video - MEAN) / STD, ids_keep, separable, cls, decoder=True)
    model.modalities["video"].masker = lambda tokens, batch, rng: plan
    with torch.no_grad():
        output = model({"video": video}, MaskRNG.seeded(0))
    out = output.outputs["video"]
    what = f"separable={separable} cls={cls}"
    order = ids_keep.argsort(dim=1)[..., None].expand(-1, -1, DIM)
    allowed = bound(latent if cls_ref is None else torch.cat([cls_ref[:, None], latent], dim=1))
    assert max_error(out.encoded, torch.gather(latent, 1, order), f"{what}: encoder tokens") <= allowed
    if cls:
        assert max_error(out.cls, cls_ref, f"{what}: encoder class token") <= allowed
    masked = torch.gather(pred, 1, plan.predict[..., None].expand(-1, -1, pred.shape[-1]))
    assert max_error(out.prediction, masked, f"{what}: decoder predictions (masked)") <= bound(masked, decoder=True)
    loss = reference_loss((video - MEAN) / STD, pred, plan.predict)
    # targets: standardised, then normalised over a patch's P values (2 stages of P terms)
    difference = bound(masked, decoder=True) + rounding_bound(out.tokens.target, 2, masked.shape[-1])
    assert max_error(output.loss, loss, f"{what}: loss (norm_pix_loss)") <= mse_bound(loss, difference, masked.numel())
    assert converted.metadata["tokenizer"]["target_tubelet"] == 1


def test_targets_are_the_subsampled_standardised_frames_in_mae_st_patch_order():
    """Without norm_pix_loss the targets are MAE-ST's patchified standardised frames exactly."""
    converted = convert(mae_st_state(), {**OPTIONS, "norm_pix_loss": False})
    assert "video/TubeletTokenizer.norm_target = 'standardized'" in converted.config
    model = build_model(converted.config)
    video = torch.rand(1, 3, FRAMES, SIZE, SIZE)
    target = model.modalities["video"].tokenizer(video).target
    expected = patchify((video - MEAN) / STD)
    # elementwise (x - mean) / std on each side: at most 3 roundings (a divide may be a reciprocal and a multiply)
    assert max_error(target, expected, "standardised targets") <= rounding_bound(expected, 3, 2)


def test_encoder_only_checkpoint_and_another_frame_count():
    state = mae_st_state(decoder=False)
    converted, model = converted_model(state)
    assert converted.metadata["encoder_only"]
    video = torch.rand(1, 3, FRAMES, SIZE, SIZE)
    cls_ref, latent, _ = reference(state, (video - MEAN) / STD, torch.arange(NUM_TOKENS)[None], True, True, False)
    with torch.no_grad():
        encoded, _ = model.encode({"video": video}, "video")
        longer, _ = model.encode({"video": torch.rand(1, 3, 2 * FRAMES, 48, 48)}, "video")
    assert max_error(encoded, latent, "encoder-only: all tokens") <= bound(torch.cat([cls_ref[:, None], latent], 1))
    assert longer.shape == (1, 2 * GRID[0] * 6 * 6, DIM) and torch.isfinite(longer).all()


def test_a_joint_table_needs_the_frame_count_to_fit():
    with pytest.raises(ValueError, match="frames"):
        convert(mae_st_state(separable=False), {**OPTIONS, "frames": 6})


def test_missing_keys_are_listed():
    state = mae_st_state()
    del state["blocks.1.attn.k.weight"]
    with pytest.raises(ValueError, match=r"MAE-ST.*missing keys \[blocks\.1\.attn\.k\.weight\]"):
        convert(state, OPTIONS)


def test_safetensors_file_through_convert_checkpoint_with_command_line_options(tmp_path):
    state = mae_st_state()
    save_file(state, tmp_path / "mae_st.safetensors")
    convert_checkpoint("mae-st", tmp_path / "mae_st.safetensors", tmp_path / "mmmae",
                       options={"heads": "4", "decoder_heads": "4", "norm_pix_loss": "true"})
    model = from_pretrained(tmp_path / "mmmae")
    video = torch.rand(1, 3, FRAMES, SIZE, SIZE)
    cls_ref, latent, _ = reference(state, (video - MEAN) / STD, torch.arange(NUM_TOKENS)[None], True, True, False)
    with torch.no_grad():
        encoded, _ = model.encode({"video": video}, "video")
    assert max_error(encoded, latent, "from_pretrained: all tokens") <= bound(torch.cat([cls_ref[:, None], latent], 1))


def test_fine_tuned_checkpoint_keeps_its_norm_on_the_pooled_feature():
    """models_vit.py keys (the encoder's and a classifier `head`): `norm` follows the mean over
    patch tokens, so it becomes the pool norm and model.features are the source's features."""
    state = mae_st_state(decoder=False) | {"head.weight": 0.1 * torch.randn(7, DIM), "head.bias": torch.zeros(7)}
    converted, model = converted_model(state)
    assert converted.metadata["dropped_keys"] == ["head.bias", "head.weight"]
    assert "Encoder.final_norm = False" in converted.config and "Encoder.pool_norm_eps = 1e-06" in converted.config
    video = torch.rand(2, 3, FRAMES, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    expected = reference(state, (video - MEAN) / STD, torch.arange(NUM_TOKENS).expand(2, -1), True, True, False,
                         pooled=True)
    with torch.no_grad():
        features = model.features({"video": video}, "video")
    # stages: patch projection, 2 blocks, pooling + norm; longest sum: the C*t*p*p = 384 patch values
    assert max_error(features, expected, "fine-tuned pooled features") <= bound(expected)
