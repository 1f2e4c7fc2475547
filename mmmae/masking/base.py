"""What every masker shares: ratio checks and turning noise into sorted index sets."""

import torch


def check_ratio(owner: str, ratio: float, binding: str = "ratio") -> float:
    """A masking ratio strictly inside (0, 1), else a ValueError naming the binding `owner.binding`."""
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"{owner}.{binding} = {ratio}: a masking ratio must lie strictly between 0 and 1")
    return ratio


def _checked_keep(owner: str, ratio: float, total: int, keep: int, binding: str, units: str) -> int:
    if not 0 < keep < total:
        raise ValueError(
            f"{owner}.{binding} = {ratio} masks {total - keep} of {total} {units}: "
            "at least one must stay visible and one must be masked"
        )
    return keep


def keep_after_masking(owner: str, ratio: float, total: int, binding: str = "ratio", units: str = "units") -> int:
    """VideoMAE's count: total - int(ratio * total) units stay visible (tube: 20 of 196 at 0.9)."""
    return _checked_keep(owner, ratio, total, total - int(ratio * total), binding, units)


def keep_of_remainder(owner: str, ratio: float, total: int, binding: str = "ratio", units: str = "units") -> int:
    """MAE's count: int(total * (1 - ratio)) units stay visible (156 of 1568 at 0.9)."""
    return _checked_keep(owner, ratio, total, int(total * (1 - ratio)), binding, units)


def split_by_noise(noise: torch.Tensor, num_keep: int) -> tuple[torch.Tensor, torch.Tensor]:
    """noise (B, M) -> (keep (B, num_keep), drop (B, M - num_keep)): lowest noise kept, both sorted."""
    order = noise.argsort(dim=1)
    return order[:, :num_keep].sort(dim=1).values, order[:, num_keep:].sort(dim=1).values


def lift(unit_ids: torch.Tensor, inner: int) -> torch.Tensor:
    """Ids of whole units (B, k) -> ids of their tokens (B, k * inner), unit u owning u*inner..u*inner+inner-1."""
    offsets = torch.arange(inner, device=unit_ids.device)
    return (unit_ids[:, :, None] * inner + offsets).flatten(1)


def tile_over_time(space_ids: torch.Tensor, frames: int, space: int) -> torch.Tensor:
    """Spatial ids (B, k) -> the same positions in every frame (B, frames * k), sorted."""
    starts = torch.arange(frames, device=space_ids.device) * space
    return (starts[None, :, None] + space_ids[:, None, :]).flatten(1)
