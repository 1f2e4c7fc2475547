"""A micro teacher saved as a pretrained folder, for the target tests."""

from pathlib import Path

import torch

from mmmae.model import MaskedAutoencoder
from mmmae.zoo.pretrained import build_model, save_pretrained
from tests.conftest import MICRO_GIN

MICRO_CONFIG = Path(MICRO_GIN).read_text()


def save_micro_teacher(folder: Path, overrides: tuple[str, ...] = ()) -> tuple[Path, MaskedAutoencoder]:
    """The micro quickstart (4-frame 16x16 clips, 2x8x8 tubelets: a (2, 2, 2) grid, width 32,
    2 blocks) with seeded weights, saved in `folder`: (its directory, the model in eval mode)."""
    torch.manual_seed(0)
    model = build_model(MICRO_CONFIG, overrides)
    directory = save_pretrained(model, folder / "teacher", MICRO_CONFIG + "\n" + "\n".join(overrides))
    return directory, model.eval()


def clip(batch: int = 2, frames: int = 4, size: int = 16) -> torch.Tensor:
    return torch.rand(batch, 3, frames, size, size, generator=torch.Generator().manual_seed(1))
