"""Stand-ins for the generation tests: sampling, self-filling and model-level decoders, a code tokenizer,
and a tiny video model to put them in."""

import torch
from einops import rearrange, reduce
from torch import nn

from mmmae.masking.random import RandomMasking
from mmmae.model import MaskedAutoencoder, Modality
from mmmae.nn.decoder import MaskTokenDecoder
from mmmae.nn.encoder import Encoder
from mmmae.objectives.reconstruction import Reconstruction
from mmmae.tokenizers.video import TubeletTokenizer
from mmmae.types import Tokens


class SamplingDecoder(nn.Module):
    """A stand-in generative decoder: a deterministic part read off the encoded tokens plus noise."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.head = nn.Linear(in_dim, out_dim)
        self.calls = []

    def forward(self, encoded, grid, plan):
        return self.head(encoded.mean(dim=1, keepdim=True)).expand(-1, plan.predict.shape[1], -1)

    def sample(self, encoded, grid, plan, *, generator=None, steps: int = 1):
        self.calls.append((encoded.shape, steps))
        base = self.forward(encoded, grid, plan)
        return base + torch.randn(base.shape, generator=generator)


class SelfFillingDecoder(SamplingDecoder):
    """A stand-in MaskGIT decoder that runs the model itself: answers its call number."""

    def fill(self, model, batch, modality, plan, *, generator=None, steps: int = 1):
        self.calls.append(steps)
        return torch.full((*plan.predict.shape, 4 * 8 * 8 * 3 // 2), float(len(self.calls)))


class SamplingModelDecoder(nn.Module):
    """A stand-in model-level decoder with `sample`: noise of each modality's target shape."""

    def __init__(self, modalities):
        super().__init__()
        self.dims = {m: modality.target_dim for m, modality in modalities.items()}

    def sample(self, encoded, tokens, plans, present, *, generator=None):
        return {m: torch.randn((*plans[m].predict.shape, d), generator=generator) for m, d in self.dims.items()}


def video_model(decoder=None, norm_target=True, model_decoder=None):
    torch.manual_seed(0)
    tokenizer = TubeletTokenizer(dim=32, patch=8, tubelet=2, channels=3, norm_target=norm_target)
    decoder = decoder or (lambda in_dim, out_dim: MaskTokenDecoder(in_dim, out_dim, dim=16, depth=1, heads=2))
    video = Modality("video", tokenizer, RandomMasking(ratio=0.5), decoder=None if model_decoder else decoder)
    return MaskedAutoencoder([video], lambda modalities: Encoder(modalities, dim=32, depth=1, heads=2),
                             [Reconstruction("video")], decoder=model_decoder).eval()


class GreyCodes(nn.Module):
    """A stand-in code tokenizer (VideoCodes): each 2x8x8 tubelet's code is its mean grey level in tenths
    (target (B, N) int64 ids); decode_targets draws code k as the grey k / 10."""

    dim, target_dim = 32, 11

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(11, 32)

    def forward(self, video):
        codes = (reduce(video, "b c (t p0) (h p1) (w p2) -> b (t h w)", "mean", p0=2, p1=8, p2=8) * 10).round().long()
        grid = (video.shape[2] // 2, video.shape[3] // 8, video.shape[4] // 8)
        return Tokens(embed=self.embed(codes), target=codes, grid=grid)

    def decode_targets(self, codes, grid):
        grey = rearrange(codes.float() / 10, "b (t h w) -> b 1 t h w", t=grid[0], h=grid[1], w=grid[2])
        return grey.repeat_interleave(2, 2).repeat_interleave(8, 3).repeat_interleave(8, 4).expand(-1, 3, -1, -1, -1)


class CodeFiller(SamplingDecoder):
    """A stand-in MaskGIT decoder: fills every hidden token with code 7, as float ids (B, Q, 1)."""

    def fill(self, model, batch, modality, plan, *, generator=None):
        return torch.full((*plan.predict.shape, 1), 7.0)
