"""Vector quantisation (VQ-VAE): each vector -> its nearest code of a learned codebook."""

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


@dataclass
class Quantized:
    """What VectorQuantizer returns for inputs z (B, N, C).

    vectors:    (B, N, C) the chosen codes, with the straight-through gradient to z.
    codes:      (B, N) int64 code ids.
    commitment: (B,) mean over tokens and channels of ||ẑ - sg(e)||², which pulls the encoder's
                output ẑ towards its code (VQ-VAE's β term; the recipe weighs it).
    codebook:   (B,) mean of ||sg(ẑ) - e||², which pulls the codes towards the encoder's outputs.
    """

    vectors: torch.Tensor
    codes: torch.Tensor
    commitment: torch.Tensor
    codebook: torch.Tensor


class VectorQuantizer(nn.Module):
    """A codebook of `num_codes` codes of width `dim`, looked up by cosine similarity.

    Inputs and codes are l2-normalised before the lookup (ViT-VQGAN's l2-normalised codes): the
    nearest code by Euclidean distance is the most similar by cosine. The codebook learns by
    gradient through the codebook term (VQ-VAE's ||sg(z) - e||²), not by EMA. While training,
    `usage` (K,) follows each code's share of the batch's inputs as an exponential moving average
    (decay USAGE_DECAY = 0.99, starting at the uniform share 1/K); a dead code, whose usage falls
    below DEAD_SHARE = 0.1 of the uniform share (about 230 steps unchosen from the start), is
    restarted at one of the batch's inputs and its usage reset to 1/K (Jukebox's random restarts;
    without restarts the codebook collapsed to 3 of 64 codes on MovingDigits). A code a batch
    merely did not pick is not moved, so a codebook larger than a batch's inputs keeps its codes.
    The restart rows are drawn from torch's global generator (K draws every training step) and,
    under torch.distributed, the codebook and usage are broadcast from rank 0. `usage` is not saved
    (a non-persistent buffer): a loaded model starts from uniform usage.
    """

    USAGE_DECAY = 0.99
    DEAD_SHARE = 0.1

    def __init__(self, num_codes: int, dim: int):
        super().__init__()
        if num_codes < 2 or dim < 1:
            raise ValueError(f"VectorQuantizer needs at least 2 codes of width 1 or more, got {num_codes} x {dim}")
        self.num_codes, self.dim = num_codes, dim
        self.codebook = nn.Parameter(torch.randn(num_codes, dim))
        self.register_buffer("usage", torch.full((num_codes,), 1 / num_codes), persistent=False)

    def codes(self) -> torch.Tensor:
        """The codebook as the lookup uses it: (K, C), l2-normalised rows, in the codebook's dtype."""
        return F.normalize(self.codebook, dim=-1)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """Code ids (...) int64 -> their vectors (..., C)."""
        return F.embedding(codes, self.codes())

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """Unit vectors z (..., C) -> the ids of their nearest codes (...) int64 (highest cosine)."""
        return (z.float() @ self.codes().float().T).argmax(dim=-1)

    @torch.no_grad()
    def restart_dead(self, z: torch.Tensor) -> None:
        """Update `usage` with the codes the unit vectors z (M, C) pick, then move the dead codes onto
        random rows of z (and reset their usage). No host sync, no data-dependent shape: a candidate
        row is drawn for every code each step, and only the dead codes take theirs."""
        picked = self.nearest(z)
        share = torch.zeros(self.num_codes, device=z.device).index_add_(0, picked, torch.ones_like(picked).float())
        usage = self.usage.float().lerp(share / z.shape[0], 1 - self.USAGE_DECAY)
        dead = usage < self.DEAD_SHARE / self.num_codes
        candidates = z[torch.randint(z.shape[0], (self.num_codes,), device=z.device)].to(self.codebook.dtype)
        self.codebook.copy_(torch.where(dead[:, None], candidates, self.codebook))
        self.usage.copy_(usage.masked_fill(dead, 1 / self.num_codes))
        if dist.is_available() and dist.is_initialized():
            dist.broadcast(self.codebook.data, src=0)
            dist.broadcast(self.usage, src=0)

    def forward(self, z: torch.Tensor) -> Quantized:
        """z (B, N, C) -> Quantized: the nearest codes, their ids and the per-sample terms."""
        if z.shape[-1] != self.dim:
            raise ValueError(f"VectorQuantizer: inputs of width {z.shape[-1]}, codes of width {self.dim}")
        z = F.normalize(z.float(), dim=-1)
        if self.training:
            self.restart_dead(z.detach().flatten(0, -2))
        codebook = self.codes().float()
        codes = (z @ codebook.T).argmax(dim=-1)
        chosen = F.embedding(codes, codebook)
        commitment = (z - chosen.detach()).pow(2).mean(dim=(1, 2))
        codebook_term = (z.detach() - chosen).pow(2).mean(dim=(1, 2))
        vectors = z + (chosen - z).detach()  # straight through: the forward value is the code, the gradient z's
        return Quantized(vectors, codes, commitment, codebook_term)
