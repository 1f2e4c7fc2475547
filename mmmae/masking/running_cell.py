"""VideoMAE V2 dual masking: any encoder masker, plus a running-cell mask that thins the decoder's queries."""

from collections.abc import Callable

import gin
import torch
from einops import rearrange, repeat

from mmmae.masking.base import check_ratio
from mmmae.masking.rng import MaskRNG
from mmmae.types import MaskPlan, Tokens


def running_cell_patterns(frames: int, height: int, width: int, cell: tuple[int, int], dropped: int) -> torch.Tensor:
    """The cell-size running patterns: (cell_h*cell_w, frames, height*width) bool, True = decoder keeps.

    Within each cell_h x cell_w cell the first `dropped` of the cell's positions are dropped in
    frame 0 of pattern 0; each frame shifts that queue by one position (period cell_h*cell_w in
    time), and pattern s starts s positions further on. Cells tile the (height, width) grid.
    """
    cell_h, cell_w = cell
    size = cell_h * cell_w
    queue = torch.arange(size) >= dropped  # True = kept
    shift = torch.arange(size)[:, None] + torch.arange(frames)[None, :] + 1  # (pattern, frame)
    cells = queue[(shift[..., None] + torch.arange(size)) % size]  # (pattern, frame, cell)
    cells = rearrange(cells, "s t (ch cw) -> s t ch cw", ch=cell_h)
    tiled = repeat(cells, "s t ch cw -> s t (gh ch) (gw cw)", gh=height // cell_h, gw=width // cell_w)
    return rearrange(tiled, "s t h w -> s t (h w)")


@gin.configurable(module="mmmae")
class RunningCellMasking:
    """VideoMAE V2's dual masking (Wang et al., CVPR 2023) around any encoder masker.

    keep: the encoder masker's visible set. predict: only the tokens a running-cell mask keeps
    for the decoder, int(ratio * cell) of every cell dropped, the same count in every frame, so
    Q = T' * H'W' * (1 - dropped/cell). Mask tokens go to every decoder-kept position, the
    encoder-visible ones included (as in the official code); loss_weight is 1 where the encoder
    did not see the token and 0 where it did, so the loss covers encoder-masked, decoder-kept
    tokens only. Each sample draws one of the cell_h*cell_w patterns uniformly.
    """

    def __init__(self, encoder_masker: Callable = gin.REQUIRED, ratio: float = 0.5, cell: tuple[int, int] = (2, 2)):
        self.encoder_masker = encoder_masker
        self.ratio = check_ratio("RunningCellMasking", ratio)
        self.cell = tuple(cell)
        size = self.cell[0] * self.cell[1]
        self.dropped = int(ratio * size)
        if not 0 < self.dropped < size:
            raise ValueError(f"RunningCellMasking.ratio = {ratio} drops {self.dropped} of the {size} positions of a "
                             f"{self.cell} cell: at least one must be dropped and one kept")

    def __call__(self, tokens: Tokens, batch: dict, rng: MaskRNG) -> MaskPlan:
        plan = self.encoder_masker(tokens, batch, rng)
        frames, height, width = tokens.grid
        if height % self.cell[0] or width % self.cell[1]:
            raise ValueError(f"RunningCellMasking.cell = {self.cell} does not tile the {height}x{width} token grid")
        patterns = running_cell_patterns(frames, height, width, self.cell, self.dropped).to(plan.keep.device)
        choice = (rng.rand(plan.keep.shape[0]) * len(patterns)).long().clamp(max=len(patterns) - 1)
        decoder_keep = patterns[choice.to(plan.keep.device)].flatten(1)  # (B, N) bool
        predict = decoder_keep.nonzero()[:, 1].view(decoder_keep.shape[0], -1)  # sorted per row
        seen = torch.zeros_like(decoder_keep).scatter_(1, plan.keep, True)
        return MaskPlan(keep=plan.keep, predict=predict, loss_weight=(~seen.gather(1, predict)).float(), aux=plan.aux)
