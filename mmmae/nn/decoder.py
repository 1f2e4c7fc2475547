"""The light MAE decoder: encoded visible tokens plus mask tokens -> predictions."""

from collections.abc import Sequence

import gin
import torch
from torch import nn

from mmmae.nn.blocks import Transformer
from mmmae.nn.pos_embed import position_table
from mmmae.types import MaskPlan, gather_tokens

CLS_MODES = (None, "encoded", "learned")


@gin.configurable(module="mmmae")
class MaskTokenDecoder(nn.Module):
    """VideoMAE decoder: [visible + pos(keep) ; mask_token + pos(predict)] -> blocks -> head.

    Only the last Q outputs (the predict set, in its sorted order) go through the head.
    in_dim and out_dim are filled in by the Modality from its tokenizer. norm_eps and
    final_norm_eps: the LayerNorm epsilons of the blocks and of the last norm (see Transformer).
    pos_embed / pos_grid: the positional table as the tokenizers' (fixed sin-cos, or learned at
    the reference grid `pos_grid` and resampled). embed_bias: MAE's `decoder_embed` has a bias.
    cls_token: a class token first in the sequence (its output is dropped): 'encoded' is the
    encoder's class output, embedded, plus `cls_embed` (MAE / ViTMAE / AudioMAE: that token's
    position row); 'learned' is `cls_embed` alone (MAE-ST's decoder_cls_token + its position).
    checkpointing: while training, run each block under activation checkpointing (trades
    recomputing its forward in the backward pass for not storing its activations).
    shuffle: VideoPrism's token shuffling: the encoded tokens are permuted at random, per sample,
    before the positions of plan.keep are added, so the decoder cannot copy a visible token to
    its own position; the mask tokens and the predictions stay at plan.predict, in its order.
    The permutation draws on torch's global generator (as drop_path does), seeded by the trainer.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        dim: int = gin.REQUIRED,
        depth: int = gin.REQUIRED,
        heads: int = gin.REQUIRED,
        pos_embed: str = "joint",
        norm_eps: float = 1e-6,
        final_norm_eps: float | None = None,
        pos_grid: Sequence[int] | None = None,
        embed_bias: bool = False,
        cls_token: str | None = None,
        checkpointing: bool = False,
        shuffle: bool = False,
    ):
        super().__init__()
        if cls_token not in CLS_MODES:
            raise ValueError(f"MaskTokenDecoder.cls_token = {cls_token!r} is not one of {CLS_MODES}")
        self.embed = nn.Linear(in_dim, dim, bias=embed_bias)
        self.mask_token = nn.Parameter(nn.init.trunc_normal_(torch.empty(1, 1, dim), std=0.02))
        self.transformer = Transformer(dim, depth, heads, norm_eps, final_norm_eps, checkpointing)
        self.head = nn.Linear(dim, out_dim)
        self.pos_embed = pos_embed
        self.positions = position_table(pos_embed, dim, pos_grid, owner="MaskTokenDecoder.pos_embed")
        self.cls_token = cls_token
        self.shuffle = shuffle
        if cls_token is not None:
            self.cls_embed = nn.Parameter(torch.zeros(1, 1, dim) if cls_token == "encoded"
                                          else nn.init.trunc_normal_(torch.empty(1, 1, dim), std=0.02))

    def forward(self, encoded: torch.Tensor, grid: tuple[int, ...], plan: MaskPlan,
                cls: torch.Tensor | None = None) -> torch.Tensor:
        """encoded (B, K, in_dim) at plan.keep (and the encoder's class output cls (B, in_dim)
        when cls_token='encoded') -> predictions (B, Q, out_dim) at plan.predict."""
        x = self.embed(encoded)
        if self.shuffle:
            x = gather_tokens(x, torch.rand(x.shape[:2], device=x.device).argsort(dim=1))
        pos = self.positions(grid, x.device).to(x.dtype)
        parts = [x + pos[plan.keep], self.mask_token.to(x.dtype) + pos[plan.predict]]
        if self.cls_token == "encoded":
            if cls is None:
                raise ValueError("MaskTokenDecoder.cls_token = 'encoded' needs the encoder's class token: "
                                 "set Modality.cls_token = True for this modality")
            parts.insert(0, self.embed(cls[:, None]) + self.cls_embed.to(x.dtype))
        elif self.cls_token == "learned":
            parts.insert(0, self.cls_embed.to(x.dtype).expand(x.shape[0], -1, -1))
        x = self.transformer(torch.cat(parts, dim=1))
        return self.head(x[:, x.shape[1] - plan.predict.shape[1] :])
