"""Discrete video tokens: a frozen VQ model (recipes/vq_video.gin) turns a clip into one code per
spatio-temporal position; masked code modelling predicts the hidden codes (recipes/motionaura.gin)."""

from pathlib import Path

import gin
import torch
from einops import rearrange
from torch import nn

from mmmae.nn.pos_embed import sincos_pos_embed
from mmmae.types import Tokens


class FrozenVQ:
    """A trained VQ model's video modality (tokenizer, encoder, QuantizedDecoder), eval mode, no
    gradient. Not an nn.Module and held by no module: it stays out of the state dict, optimizer and
    device moves of the model that tokenizes with it, and moves to the input's device when first used."""

    def __init__(self, source: str, model: nn.Module, modality: str):
        self.source, self.model, self.modality = source, model, modality

    def __deepcopy__(self, memo: dict) -> "FrozenVQ":
        """Itself: a copy of the model (the trainer's random_init copy) shares the frozen VQ."""
        return self

    @property
    def decoder(self) -> nn.Module:
        return self.model.modalities[self.modality].decoder

    @property
    def tokenizer(self) -> nn.Module:
        return self.model.modalities[self.modality].tokenizer

    def on(self, device: torch.device) -> "FrozenVQ":
        """Itself, its model moved to `device` when it is elsewhere."""
        if next(self.model.parameters()).device != device:
            self.model.to(device)
        return self

    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
        """Clips (B, C, T, H, W) in [0, 1] -> (codes (B, N) int64, grid)."""
        encoded, _ = self.on(video.device).model.encode({self.modality: video}, self.modality)
        return self.decoder.codes(encoded), self.tokenizer.grid(video.shape)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, grid: tuple[int, ...]) -> torch.Tensor:
        """Code ids (B, N) int64 on `grid` -> the decoder's pixel patches (B, N, P)."""
        return self.on(codes.device).decoder.decode_codes(codes, tuple(grid))


@gin.configurable(module="mmmae")
class VideoCodes(nn.Module):
    """Clips (B, C, T, H, W) -> Tokens(embed = learned code embedding + fixed sin-cos positions
    (B, N, dim), target = code ids (B, N) int64, grid = the VQ's token grid).

    source: a zoo name, run or pretrained folder or Hub repo id (zoo.pretrained.locate) of a model
    whose `modality` is decoded by a QuantizedDecoder and reconstructs raw pixels
    (`TubeletTokenizer.norm_target = False`), e.g. 'tiny-vq-movingdigits'. target_dim is the
    codebook size K: a decoder predicts K logits a token (MaskedLanguageModeling scores them).
    """

    def __init__(self, dim: int = gin.REQUIRED, source: str | Path = gin.REQUIRED, modality: str = "video"):
        super().__init__()
        # Tokenizers sit below the zoo (docs/design.md §2): the frozen model is loaded at run time.
        from mmmae.zoo.pretrained import frozen_model

        model = frozen_model(source)
        if modality not in model.modalities:
            raise ValueError(f"VideoCodes.modality = {modality!r}: the model of VideoCodes.source = {str(source)!r} "
                             f"has the modalities {list(model.modalities)}")
        self.frozen = FrozenVQ(str(source), model, modality)
        if not hasattr(self.frozen.decoder, "decode_codes"):
            raise ValueError(f"VideoCodes.source = {str(source)!r}: its {modality!r} decoder is "
                             f"{type(self.frozen.decoder).__name__}, not a QuantizedDecoder (train one with "
                             "recipes/vq_video.gin)")
        if getattr(self.frozen.tokenizer, "norm_target", False) is not False:
            raise ValueError(f"VideoCodes.source = {str(source)!r} reconstructs normalised targets, which cannot be "
                             "turned back into pixels: train it with TubeletTokenizer.norm_target = False")
        self.dim = dim
        self.target_dim = self.frozen.decoder.num_codes
        self.embed = nn.Embedding(self.target_dim, dim)

    def embed_codes(self, codes: torch.Tensor, grid: tuple[int, ...]) -> torch.Tensor:
        """Code ids (B, N) int64 on `grid` -> embeddings with positions (B, N, dim)."""
        embed = self.embed(codes)
        return embed + sincos_pos_embed(tuple(grid), self.dim, "joint", embed.device).to(embed.dtype)

    def forward(self, video: torch.Tensor) -> Tokens:
        codes, grid = self.frozen.encode(video)
        return Tokens(embed=self.embed_codes(codes, grid), target=codes, grid=grid)

    def decode_targets(self, codes: torch.Tensor, grid: tuple[int, ...]) -> torch.Tensor:
        """Code ids (B, N) int64 on `grid` (T', H', W') -> pixels (B, C, T, H, W) in [0, 1] through
        the frozen VQ's decoder."""
        patches = self.frozen.decode(codes, grid)
        t, p1, p2 = self.frozen.tokenizer.target_kernel
        pixels = rearrange(patches.float(), "b (t h w) (p0 p1 p2 c) -> b c (t p0) (h p1) (w p2)",
                           t=grid[0], h=grid[1], w=grid[2], p0=t, p1=p1, p2=p2)
        return pixels.clamp(0.0, 1.0)
