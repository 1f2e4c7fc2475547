"""The models `mmmae bench step` times: transformers' VideoMAEForPreTraining and the same
weights converted to mmmae, mmmae variants of that model, and video / audio / video+audio models.

A Contender owns a model, its AdamW and a fixed batch; `step()` is one pretraining step:
forward, backward, optimizer step, gradients cleared.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from einops import rearrange, repeat
from transformers import VideoMAEConfig, VideoMAEForPreTraining

from mmmae.bench import STEP_DTYPES
from mmmae.masking.rng import MaskRNG
from mmmae.model import MaskedAutoencoder
from mmmae.tokenizers.patches import IMAGENET_MEAN, IMAGENET_STD
from mmmae.zoo.convert.hf_videomae import convert
from mmmae.zoo.pretrained import build_model

# name: (encoder width, heads, decoder width, decoder heads); depth 12, decoder depth 4 (VideoMAE).
SIZES = {"tiny": (192, 3, 96, 3), "small": (384, 6, 192, 3), "base": (768, 12, 384, 6)}
DTYPES = {name: getattr(torch, name) for name in STEP_DTYPES}


@dataclass
class Geometry:
    """One VideoMAE pretraining configuration: size, clip, tube-mask ratio, batch, depth."""

    size: str = "small"
    frames: int = 16
    image: int = 224
    ratio: float = 0.9
    batch: int = 2
    depth: int = 12
    decoder_depth: int = 4

    @property
    def space(self) -> int:
        return (self.image // 16) ** 2

    @property
    def tokens(self) -> int:
        return self.frames // 2 * self.space


class Contender:
    """A model, its fused AdamW and the forward `loss()` on a fixed batch; dtype other than
    float32 runs the forward under autocast (parameters stay float32, as Accelerate does)."""

    def __init__(self, name: str, model: torch.nn.Module, loss: Callable[[], torch.Tensor], clips: int,
                 device: torch.device, dtype: torch.dtype):
        self.name, self.model, self.clips = name, model.to(device).train(), clips
        self.device, self.dtype = device, dtype
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-4, betas=(0.9, 0.95), fused=True)
        self.loss = loss

    def autocast(self):
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def step(self) -> None:
        self.forward_backward(update=True)

    def forward_backward(self, update: bool = False) -> None:
        """The step, with the optimizer's update only when `update` (FLOPs are counted without it)."""
        with self.autocast():
            loss = self.loss()
        loss.backward()
        if update:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


def hf_config(geometry: Geometry) -> VideoMAEConfig:
    dim, heads, decoder_dim, decoder_heads = SIZES[geometry.size]
    return VideoMAEConfig(
        image_size=geometry.image, patch_size=16, num_frames=geometry.frames, tubelet_size=2, hidden_size=dim,
        num_hidden_layers=geometry.depth, num_attention_heads=heads, intermediate_size=4 * dim,
        decoder_hidden_size=decoder_dim, decoder_num_hidden_layers=geometry.decoder_depth,
        decoder_num_attention_heads=decoder_heads, decoder_intermediate_size=4 * decoder_dim, use_mean_pooling=False,
        norm_pix_loss=True, attn_implementation="sdpa")


def tube_mask(geometry: Geometry, seed: int = 0) -> torch.Tensor:
    """(B, N) bool, True = hidden: VideoMAE's tube mask, int(ratio * H'W') positions in every frame."""
    hidden = int(geometry.ratio * geometry.space)
    noise = torch.rand(geometry.batch, geometry.space, generator=torch.Generator().manual_seed(seed))
    spatial = torch.zeros(geometry.batch, geometry.space, dtype=torch.bool).scatter(
        1, noise.argsort(1)[:, :hidden], True)
    return repeat(spatial, "b s -> b (t s)", t=geometry.frames // 2)


def clip(geometry: Geometry, device: torch.device) -> torch.Tensor:
    """[0, 1] pixels (B, C, T, H, W)."""
    g = torch.Generator().manual_seed(1)
    return torch.rand(geometry.batch, 3, geometry.frames, geometry.image, geometry.image, generator=g).to(device)


def videomae_pair(geometry: Geometry, device: torch.device, dtype: torch.dtype,
                  overrides: Sequence[str] = ()) -> tuple[Contender, Contender, str]:
    """transformers' VideoMAEForPreTraining (SDPA attention, random weights) and mmmae's model
    converted from those weights (`mmmae convert --from hf-videomae`), tube masking at
    geometry.ratio and SDPA attention on both, the same clips; and the converted gin config
    (for variants)."""
    torch.manual_seed(0)
    hf = VideoMAEForPreTraining(hf_config(geometry))
    converted = convert(hf.state_dict(), hf.config.to_dict())
    # SDPA, as transformers runs it ('auto' would take xformers on CUDA in bf16).
    config = converted.config + f"\nvideo/TubeMasking.ratio = {geometry.ratio}\nBlock.backend = 'sdpa'\n"
    ours = build_model(config, overrides)
    ours.load_state_dict(converted.state_dict)
    video = clip(geometry, device)
    mean, std = (torch.tensor(s, device=device).view(1, 3, 1, 1, 1) for s in (IMAGENET_MEAN, IMAGENET_STD))
    hf_pixels = rearrange((video - mean) / std, "b c t h w -> b t c h w").contiguous()  # what HF's processor gives
    mask = tube_mask(geometry).to(device)
    hf_side = Contender("transformers", hf, lambda: hf(pixel_values=hf_pixels, bool_masked_pos=mask).loss,
                        geometry.batch, device, dtype)
    return hf_side, mmmae_contender("mmmae", ours, {"video": video}, device, dtype), config


def mmmae_contender(name: str, model: MaskedAutoencoder, batch: dict, device: torch.device,
                    dtype: torch.dtype) -> Contender:
    """An mmmae model on `batch`, masks drawn on the device from a fresh MaskRNG each step."""
    clips = next(iter(batch.values())).shape[0]
    return Contender(name, model, lambda: model(batch, MaskRNG.seeded(0, device)).loss, clips, device, dtype)


def mmmae_variant(name: str, config: str, overrides: Sequence[str], batch: dict, device: torch.device,
                  dtype: torch.dtype, state: dict | None = None) -> Contender:
    """The model of gin text `config` with `overrides`, loaded with `state` when given."""
    model = build_model(config, overrides)
    if state is not None:
        model.load_state_dict(state)
    return mmmae_contender(name, model, batch, device, dtype)


def audiovisual_config(geometry: Geometry, modalities: Sequence[str]) -> str:
    """Gin text of a `geometry.size` model over `modalities` (video and/or audio), each encoded
    alone by the shared encoder (fusion 'separate'), video tubes at geometry.ratio, audio
    patches (10 s, 1024 x 128 fbank, 512 tokens) randomly masked at 0.8 (AudioMAE)."""
    size_file = {"tiny": "models/tiny.gin", "small": "models/small.gin", "base": "models/base.gin"}[geometry.size]
    lines = [f"include '{size_file}'", "include 'models/encoder.gin'", "Encoder.fusion = 'separate'",
             f"ENC_DEPTH = {geometry.depth}", f"DEC_DEPTH = {geometry.decoder_depth}"]
    for m in modalities:
        lines.append(f"include 'modalities/{m}.gin'")
    lines += [f"video/TubeMasking.ratio = {geometry.ratio}", "video/Modality.masker = @video/TubeMasking()",
              "audio/RandomMasking.ratio = 0.8", "audio/Modality.masker = @audio/RandomMasking()",
              "audio/AudioTokenizer.target_length = 1024",
              f"MaskedAutoencoder.modalities = [{', '.join(f'@{m}/Modality()' for m in modalities)}]",
              f"MaskedAutoencoder.objectives = [{', '.join(f'@{m}/Reconstruction()' for m in modalities)}]"]
    return "\n".join(lines) + "\n"


def audiovisual_batch(geometry: Geometry, modalities: Sequence[str], device: torch.device) -> dict:
    g = torch.Generator().manual_seed(2)
    batch = {"video": clip(geometry, device)}
    batch["audio"] = (0.1 * torch.randn(geometry.batch, 160_000, generator=g)).to(device)  # 10 s at 16 kHz
    return {m: batch[m] for m in modalities}

