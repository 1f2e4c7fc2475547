"""A VQ-VAE decoder over the encoder's tokens: project -> quantise -> decode every token to its target."""

import math

import gin
import torch
from torch import nn

from mmmae.nn.blocks import Transformer
from mmmae.nn.pos_embed import position_table
from mmmae.nn.vector_quantizer import VectorQuantizer
from mmmae.types import Decoded, MaskPlan, gather_tokens


@gin.configurable(module="mmmae")
class QuantizedDecoder(nn.Module):
    """The encoded tokens (B, N, in_dim) of the whole grid -> `code_dim` -> nearest of `num_codes`
    codes (VectorQuantizer) -> a transformer over the grid of codes -> (B, Q, out_dim) at plan.predict.

    The masker must keep every token (the codes are the bottleneck, not the mask): bind
    `PredictEveryToken(masker=NoMasking())`. Returns Decoded with per-sample terms 'commitment' and
    'codebook' for `DecoderTerm` objectives. `codes` and `decode_codes` are the two halves, which a
    frozen VQ serves as a tokenizer (mmmae.tokenizers.codes.VideoCodes).
    """

    def __init__(self, in_dim: int, out_dim: int, num_codes: int = gin.REQUIRED, code_dim: int = gin.REQUIRED,
                 dim: int = gin.REQUIRED, depth: int = gin.REQUIRED, heads: int = gin.REQUIRED,
                 pos_embed: str = "joint"):
        super().__init__()
        self.project = nn.Linear(in_dim, code_dim)
        self.quantizer = VectorQuantizer(num_codes, code_dim)
        self.embed = nn.Linear(code_dim, dim)
        self.positions = position_table(pos_embed, dim, owner="QuantizedDecoder.pos_embed")
        self.transformer = Transformer(dim, depth, heads)
        self.head = nn.Linear(dim, out_dim)

    @property
    def num_codes(self) -> int:
        """K, the codebook's size."""
        return self.quantizer.num_codes

    def codes(self, encoded: torch.Tensor) -> torch.Tensor:
        """Encoded tokens (B, N, in_dim) -> code ids (B, N) int64."""
        return self.quantizer(self.project(encoded)).codes

    def decode_codes(self, codes: torch.Tensor, grid: tuple[int, ...]) -> torch.Tensor:
        """Code ids (B, N) int64 on `grid` -> predicted targets (B, N, out_dim)."""
        return self.decode(self.quantizer.lookup(codes), grid)

    def decode(self, vectors: torch.Tensor, grid: tuple[int, ...]) -> torch.Tensor:
        """Code vectors (B, N, code_dim) on `grid` -> (B, N, out_dim)."""
        x = self.embed(vectors)
        return self.head(self.transformer(x + self.positions(grid, x.device).to(x.dtype)))

    def forward(self, encoded: torch.Tensor, grid: tuple[int, ...], plan: MaskPlan) -> Decoded:
        if encoded.shape[1] != math.prod(grid):
            raise ValueError(f"QuantizedDecoder quantises every token of the grid {grid} ({math.prod(grid)}), but the "
                             f"masker keeps {encoded.shape[1]}: bind the modality's masker to "
                             "@PredictEveryToken() with PredictEveryToken.masker = @NoMasking()")
        quantized = self.quantizer(self.project(encoded))
        prediction = gather_tokens(self.decode(quantized.vectors.to(encoded.dtype), grid), plan.predict)
        return Decoded(prediction, terms={"commitment": quantized.commitment, "codebook": quantized.codebook})
