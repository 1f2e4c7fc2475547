"""Teacher token features as a modality's reconstruction target (VideoPrism's local targets,
feature distillation)."""

import gin
import torch
import torch.nn.functional as F
from einops import rearrange

from mmmae.targets.teacher import load_teacher
from mmmae.types import Tokens

INTERPOLATION = {1: "linear", 2: "bilinear", 3: "trilinear"}


def resample_tokens(x: torch.Tensor, grid: tuple[int, ...], to_grid: tuple[int, ...]) -> torch.Tensor:
    """Tokens (B, prod(grid), D) on `grid` -> (B, prod(to_grid), D) on `to_grid`, by (bi/tri)linear
    interpolation of each channel over the lattice (align_corners False); unchanged when equal."""
    if tuple(grid) == tuple(to_grid):
        return x
    if len(grid) != len(to_grid) or len(grid) not in INTERPOLATION:
        raise ValueError(f"the teacher's token grid {tuple(grid)} cannot be resampled to the student's "
                         f"{tuple(to_grid)}: both need the same 1 to 3 axes")
    lattice = x.transpose(1, 2).reshape(x.shape[0], x.shape[2], *grid)
    resampled = F.interpolate(lattice.float(), size=tuple(to_grid), mode=INTERPOLATION[len(grid)],
                              align_corners=False).to(x.dtype)
    return rearrange(resampled.flatten(2), "b d n -> b n d")


@gin.configurable(module="mmmae")
class TeacherTokens:
    """The tokens of a frozen teacher (`teacher`: zoo name, run or pretrained folder, Hub repo id)
    on the full, unmasked batch entry of its `modality`, after its block `block` (1..depth; None:
    its final output, after the final norm), resampled to the student's token grid when the
    grids differ, and layer-normalised per token (no affine) with `layer_norm`: (B, N, D_teacher).

    Computed under no_grad in the step's precision (autocast applies); dim = the teacher's width,
    which the student's decoder predicts, whatever the student's own width.
    """

    def __init__(self, teacher: str = gin.REQUIRED, modality: str = "video", block: int | None = None,
                 layer_norm: bool = True):
        self.teacher = load_teacher(teacher)
        self.teacher.modality(modality, "TeacherTokens.modality")
        depth = len(self.teacher.model.encoder.blocks) + self.teacher.model.encoder.specific_depth
        if block is not None and not 1 <= block <= depth:
            raise ValueError(f"TeacherTokens.block = {block}: the teacher {teacher!r} has blocks 1..{depth} "
                             "(None: its final output)")
        self.modality = modality
        self.block = block
        self.layer_norm = layer_norm
        self.dim = self.teacher.dim

    @torch.no_grad()
    def __call__(self, inputs: torch.Tensor, tokens: Tokens) -> torch.Tensor:
        """The student's batch entry and Tokens -> targets (B, N, D_teacher) on tokens.grid."""
        x, _, grid = self.teacher.encode(inputs, self.modality, self.block)
        if self.layer_norm:
            x = F.layer_norm(x, x.shape[-1:])
        return resample_tokens(x, grid, tokens.grid)
