"""Stand-ins for the model's outputs, for the objectives that pool encodings (Contrastive, NTXent)."""

from types import SimpleNamespace

import torch


def outputs(encoded: dict[str, torch.Tensor], present: dict[str, torch.Tensor] | None = None) -> dict:
    """Stand-ins for ModalityOutput: the objective reads .encoded (B, K, D), .mask and .present (B,)."""
    present = present or {}
    return {m: SimpleNamespace(encoded=x, present=present.get(m, torch.ones(len(x), dtype=torch.bool)), mask=None)
            for m, x in encoded.items()}


def encodings(names: tuple[str, str], batch: int = 4, tokens: int = 3, dim: int = 5, seed: int = 0
              ) -> dict[str, torch.Tensor]:
    """Seeded random encodings (batch, tokens, dim) of the two modalities `names`."""
    generator = torch.Generator().manual_seed(seed)
    return {m: torch.randn(batch, tokens, dim, generator=generator) for m in names}
