"""One decoder for every modality: shared weights, modality embeddings, a head per modality."""

import gin
import torch
from torch import nn

from mmmae.nn.blocks import Transformer
from mmmae.nn.pos_embed import sincos_pos_embed
from mmmae.types import MaskPlan, Tokens


class FusedDecoder(nn.Module):
    """What the shared and joint decoders own: the input projection, the mask token, one
    embedding and one output head per modality, and the transformer. checkpointing: while
    training, run each block under activation checkpointing (see Transformer)."""

    def __init__(self, modalities: dict[str, nn.Module], dim: int, depth: int, heads: int, pos_embed: str,
                 checkpointing: bool = False):
        super().__init__()
        in_dims = {m.tokenizer.dim for m in modalities.values()}
        if len(in_dims) != 1:
            raise ValueError(f"{type(self).__name__}: the modalities' token widths differ ({sorted(in_dims)})")
        self.embed = nn.Linear(in_dims.pop(), dim, bias=False)
        self.mask_token = nn.Parameter(nn.init.trunc_normal_(torch.empty(1, 1, dim), std=0.02))
        self.modality_embed = nn.ParameterDict(
            {name: nn.Parameter(nn.init.trunc_normal_(torch.empty(1, 1, dim), std=0.02)) for name in modalities})
        self.heads = nn.ModuleDict({name: nn.Linear(dim, m.target_dim) for name, m in modalities.items()})
        self.transformer = Transformer(dim, depth, heads, checkpointing=checkpointing)
        self.pos_embed = pos_embed

    def _positions(self, name: str, tokens: Tokens, like: torch.Tensor) -> torch.Tensor:
        pos = sincos_pos_embed(tokens.grid, like.shape[-1], self.pos_embed, like.device).to(like.dtype)
        return pos + self.modality_embed[name].to(like.dtype)

    def visible(self, name: str, encoded: torch.Tensor, tokens: Tokens, plan: MaskPlan) -> torch.Tensor:
        """Encoded visible tokens (B, K, in_dim) -> decoder inputs (B, K, dim) with positions."""
        x = self.embed(encoded)
        return x + self._positions(name, tokens, x)[0, plan.keep]

    def queries(self, name: str, tokens: Tokens, plan: MaskPlan) -> torch.Tensor:
        """Mask tokens at plan.predict with positions: (B, Q, dim)."""
        mask = self.mask_token.to(self.embed.weight.dtype)
        return mask + self._positions(name, tokens, mask)[0, plan.predict]


@gin.configurable(module="mmmae")
class SharedDecoder(FusedDecoder):
    """The same decoder weights run on each modality alone (AV-MAE's `same_decoder`, TVLT)."""

    def __init__(self, modalities: dict[str, nn.Module], dim: int = gin.REQUIRED, depth: int = gin.REQUIRED,
                 heads: int = gin.REQUIRED, pos_embed: str = "joint", checkpointing: bool = False):
        super().__init__(modalities, dim, depth, heads, pos_embed, checkpointing)

    def forward(self, encoded: dict[str, torch.Tensor], tokens: dict[str, Tokens], plans: dict[str, MaskPlan],
                present: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """{m: (B, K_m, in_dim)} -> {m: predictions (B, Q_m, P_m)} at plans[m].predict."""
        out = {}
        for m in self.heads:
            queries = self.queries(m, tokens[m], plans[m])
            x = self.transformer(torch.cat([self.visible(m, encoded[m], tokens[m], plans[m]), queries], dim=1))
            out[m] = self.heads[m](x[:, x.shape[1] - queries.shape[1]:])
        return out
