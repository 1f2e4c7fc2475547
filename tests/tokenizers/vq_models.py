"""A micro VQ (recipes/vq_video.gin at microscopic size) saved as a pretrained folder, for the
discrete-token tests."""

from pathlib import Path

import torch

from mmmae.model import MaskedAutoencoder
from mmmae.zoo.pretrained import build_model, save_pretrained

# 4-frame 16x16 clips, 2x4x4 tubelets: a (2, 4, 4) grid of 32 codes out of 16, width 32, 1 block.
MICRO_VQ = """include 'recipes/vq_video.gin'
ENC_DIM = 32
ENC_DEPTH = 1
DEC_DIM = 16
DEC_DEPTH = 1
VQ_CODES = 16
VQ_CODE_DIM = 4
MovingDigits.frames = 4
MovingDigits.size = 16
MovingDigits.digit_size = 8
"""
GRID = (2, 4, 4)
CODES = 16


def save_micro_vq(folder: Path) -> tuple[Path, MaskedAutoencoder]:
    """The micro VQ with seeded weights, saved in `folder`: (its directory, the model in eval mode)."""
    torch.manual_seed(0)
    model = build_model(MICRO_VQ)
    return save_pretrained(model, folder / "vq", MICRO_VQ), model.eval()


def clip(batch: int = 2, frames: int = 4, size: int = 16, seed: int = 1) -> torch.Tensor:
    return torch.rand(batch, 3, frames, size, size, generator=torch.Generator().manual_seed(seed))
