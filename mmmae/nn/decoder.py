"""The light MAE decoder: encoded visible tokens plus mask tokens -> predictions."""

import gin
import torch
from torch import nn

from mmmae.nn.blocks import Transformer
from mmmae.nn.pos_embed import sincos_pos_embed
from mmmae.types import MaskPlan


@gin.configurable(module="mmmae")
class MaskTokenDecoder(nn.Module):
    """VideoMAE decoder: [visible + pos(keep) ; mask_token + pos(predict)] -> blocks -> head.

    Only the last Q outputs (the predict set, in its sorted order) go through the head.
    in_dim and out_dim are filled in by the Modality from its tokenizer. norm_eps and
    final_norm_eps: the LayerNorm epsilons of the blocks and of the last norm (see Transformer).
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
    ):
        super().__init__()
        self.embed = nn.Linear(in_dim, dim, bias=False)
        self.mask_token = nn.Parameter(nn.init.trunc_normal_(torch.empty(1, 1, dim), std=0.02))
        self.transformer = Transformer(dim, depth, heads, norm_eps, final_norm_eps)
        self.head = nn.Linear(dim, out_dim)
        self.pos_embed = pos_embed

    def forward(self, encoded: torch.Tensor, grid: tuple[int, ...], plan: MaskPlan) -> torch.Tensor:
        """encoded (B, K, in_dim) at plan.keep -> predictions (B, Q, out_dim) at plan.predict."""
        x = self.embed(encoded)
        pos = sincos_pos_embed(grid, x.shape[-1], self.pos_embed, x.device).to(x.dtype)
        visible = x + pos[plan.keep]
        queries = self.mask_token.to(x.dtype) + pos[plan.predict]
        x = self.transformer(torch.cat([visible, queries], dim=1))
        return self.head(x[:, x.shape[1] - plan.predict.shape[1] :])
