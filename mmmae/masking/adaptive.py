"""AdaMAE's adaptive masking (Bandara et al., CVPR 2023): a learned categorical over tokens.

A small sampling network scores every token; the visible set is drawn from the categorical
p = softmax(scores) without replacement, and log p goes to MaskPlan.aux["log_prob"] so that
objectives.adaptive.AdaptiveMaskingLoss can train the sampler (REINFORCE on the detached
reconstruction error).
"""

import gin
import torch
from torch import nn

from mmmae.masking.base import check_ratio, keep_of_remainder, split_by_noise
from mmmae.masking.rng import MaskRNG
from mmmae.nn.blocks import Block
from mmmae.types import MaskPlan, Tokens


def gumbel(uniform: torch.Tensor) -> torch.Tensor:
    """Standard Gumbel noise -log(-log u) from uniform [0, 1) draws (u = 0 gives -inf)."""
    return -torch.log(-torch.log(uniform))


def sample_without_replacement(log_prob: torch.Tensor, num: int,
                               uniform: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gumbel-top-k: log_prob (B, N), uniform (B, N) -> (chosen (B, num), rest (B, N - num)), both sorted.

    The `num` largest log p_i + Gumbel_i are distributed exactly like `num` sequential draws
    from the categorical p, each renormalised over the tokens not yet drawn (the law of
    torch.multinomial(p, num, replacement=False)); Kool et al., ICML 2019, after Vieira 2014.
    """
    return split_by_noise(-(log_prob.detach() + gumbel(uniform.to(log_prob.device))), num)


@gin.configurable(module="mmmae")
class AdaptiveMasking(nn.Module):
    """Keep int(N * (1 - ratio)) tokens (MAE count) sampled from a learned categorical; predict the rest.

    Sampling network as in AdaMAE: one transformer block (`heads`, `mlp_ratio`; AdaMAE: 8 and 4)
    over tokens.embed (B, N, dim), not detached, so its gradient also reaches the tokenizer,
    then Linear(dim, 1) -> logits (B, N) -> p = softmax(nan_to_num(logits)). The dropout 0.1
    of AdaMAE's block is left out. aux["log_prob"]: log p (B, N), differentiable. Padding
    (tokens.valid) is not excluded: meant for video, whose tokens are all valid.
    """

    def __init__(self, dim: int = gin.REQUIRED, ratio: float = 0.95, heads: int = 8, mlp_ratio: float = 4.0):
        super().__init__()
        self.ratio = check_ratio("AdaptiveMasking", ratio)
        if dim % heads:
            raise ValueError(f"AdaptiveMasking.heads = {heads} does not divide AdaptiveMasking.dim = {dim}")
        self.dim = dim
        self.block = Block(dim, heads, mlp_ratio)
        self.head = nn.Linear(dim, 1)

    def log_prob(self, embed: torch.Tensor) -> torch.Tensor:
        """Token embeddings (B, N, dim) -> log p (B, N) float32 of the sampling categorical."""
        if embed.shape[-1] != self.dim:
            raise ValueError(f"AdaptiveMasking.dim = {self.dim} but the tokens are {embed.shape[-1]} wide "
                             "(bind it to the tokenizer's width, e.g. %ENC_DIM)")
        logits = self.head(self.block(embed)).squeeze(-1).float()
        return torch.log_softmax(torch.nan_to_num(logits), dim=-1)

    def forward(self, tokens: Tokens, batch: dict, rng: MaskRNG) -> MaskPlan:
        num_keep = keep_of_remainder("AdaptiveMasking", self.ratio, tokens.num_tokens)
        log_prob = self.log_prob(tokens.embed)
        keep, predict = sample_without_replacement(log_prob, num_keep, rng.rand(*log_prob.shape))
        return MaskPlan(keep=keep, predict=predict, aux={"log_prob": log_prob})
