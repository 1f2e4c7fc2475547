"""The masks of `mmmae inpaint --mask SPEC`: what to fill, in pixels of the clip the model sees.

A spec is one part or several joined by '+' (their union); True = fill:

    box:y0,x0,y1,x1[@t0-t1]   rows y0..y1-1 and columns x0..x1-1 (as Python slices), in frames
                              t0..t1-1 (every frame without @)
    span:t0-t1                every pixel of frames t0..t1-1
    random:R                  a share R (0 < R < 1) of the model's tokens, drawn with the seed
    FILE.png | FILE.npy       a mask file, nonzero = fill: a PNG (H, W) for every frame (a pixel is
                              nonzero when its grey value is), a .npy (H, W) or (T, H, W) (no pickle)

Coordinates are those of the clip as the model sees it (after resizing and cropping; frames
counted from the clip's first). `parse_mask` checks the syntax (and reads a file) at once;
`MaskSpec.pixels` checks the bounds against the clip's size.
"""

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

SPEC_HELP = ("box:y0,x0,y1,x1[@t0-t1] (pixels, end excluded), span:t0-t1 (frames, end excluded), random:R "
             "(0 < R < 1, a share of the tokens), or a .png / .npy mask file (nonzero = fill); join parts with '+'")
FRAMES = r"(\d+)-(\d+)"


class MaskSpecError(ValueError):
    """A mask spec that cannot be parsed or does not fit the clip; the message names the spec."""


@dataclass(frozen=True)
class Box:
    """Rows y0:y1 and columns x0:x1 of frames t0:t1 (every frame when t0 is None)."""

    y0: int
    x0: int
    y1: int
    x1: int
    t0: int | None = None
    t1: int | None = None

    def pixels(self, shape: tuple[int, int, int], kernel: tuple[int, ...], generator: torch.Generator | None
               ) -> torch.Tensor:
        frames, height, width = shape
        t0, t1 = (0, frames) if self.t0 is None else (self.t0, self.t1)
        if not (self.y1 <= height and self.x1 <= width and t1 <= frames):
            raise MaskSpecError(f"box {self.y0},{self.x0},{self.y1},{self.x1}@{t0}-{t1} does not fit the clip of "
                                f"{frames} frames of {height}x{width} pixels the model sees")
        mask = torch.zeros(shape, dtype=torch.bool)
        mask[t0:t1, self.y0:self.y1, self.x0:self.x1] = True
        return mask


@dataclass(frozen=True)
class Span:
    """Every pixel of frames t0:t1."""

    t0: int
    t1: int

    def pixels(self, shape: tuple[int, int, int], kernel: tuple[int, ...], generator: torch.Generator | None
               ) -> torch.Tensor:
        if self.t1 > shape[0]:
            raise MaskSpecError(f"span {self.t0}-{self.t1} does not fit the clip of {shape[0]} frames the model sees")
        mask = torch.zeros(shape, dtype=torch.bool)
        mask[self.t0:self.t1] = True
        return mask


@dataclass(frozen=True)
class RandomTokens:
    """round(ratio * N) of the N tokens of the lattice `kernel` cuts, uniformly at random."""

    ratio: float

    def pixels(self, shape: tuple[int, int, int], kernel: tuple[int, ...], generator: torch.Generator | None
               ) -> torch.Tensor:
        grid = [size // cut for size, cut in zip(shape, kernel)]
        count = round(self.ratio * int(np.prod(grid)))
        hidden = torch.zeros(int(np.prod(grid)), dtype=torch.bool)
        hidden[torch.randperm(hidden.numel(), generator=generator)[:count]] = True
        tokens = hidden.view(grid)
        for axis, cut in enumerate(kernel):
            tokens = tokens.repeat_interleave(cut, dim=axis)
        return tokens


@dataclass(frozen=True)
class MaskFile:
    """A mask read from a file: (H, W) for every frame, or (T, H, W)."""

    path: str
    values: np.ndarray

    def pixels(self, shape: tuple[int, int, int], kernel: tuple[int, ...], generator: torch.Generator | None
               ) -> torch.Tensor:
        if self.values.shape not in (tuple(shape), tuple(shape[1:])):
            raise MaskSpecError(f"mask file {self.path} is {'x'.join(map(str, self.values.shape))}, but the clip the "
                                f"model sees is {shape[0]} frames of {shape[1]}x{shape[2]} pixels: give a mask of "
                                f"{shape[1]}x{shape[2]} (every frame) or {shape[0]}x{shape[1]}x{shape[2]}")
        return torch.from_numpy(np.broadcast_to(self.values, shape).copy())


MaskPart = Box | Span | RandomTokens | MaskFile


@dataclass(frozen=True)
class MaskSpec:
    """A parsed spec: the union of its parts."""

    text: str
    parts: tuple[MaskPart, ...]

    def pixels(self, shape: tuple[int, int, int], kernel: tuple[int, ...], generator: torch.Generator | None = None
               ) -> torch.Tensor:
        """(T, H, W) bool, True = fill, for a clip of `shape` cut into tokens by `kernel` (p0, p, p)."""
        mask = torch.zeros(shape, dtype=torch.bool)
        for part in self.parts:
            try:
                mask |= part.pixels(shape, kernel, generator)
            except MaskSpecError as error:
                raise MaskSpecError(f"--mask {self.text!r}: {error}") from None
        return mask


def parse_mask(text: str) -> MaskSpec:
    """A spec (module docstring) -> MaskSpec; a MaskSpecError naming the part at fault."""
    return MaskSpec(text, tuple(parse_part(part.strip(), text) for part in text.split("+")))


def parse_part(part: str, text: str) -> MaskPart:
    """One part of a spec."""
    if part.lower().endswith((".png", ".npy")):
        return MaskFile(part, read_mask_file(Path(part), text))
    kind, _, value = part.partition(":")
    if kind == "box" and (found := re.fullmatch(rf"(\d+),(\d+),(\d+),(\d+)(?:@{FRAMES})?", value)):
        y0, x0, y1, x1, t0, t1 = (None if v is None else int(v) for v in found.groups())
        if y0 < y1 and x0 < x1 and (t0 is None or t0 < t1):
            return Box(y0, x0, y1, x1, t0, t1)
        raise MaskSpecError(f"--mask {text!r}: {part!r} is empty: each end must be past its start (y0 < y1, x0 < x1, "
                            "t0 < t1)")
    if kind == "span" and (found := re.fullmatch(FRAMES, value)):
        t0, t1 = map(int, found.groups())
        if t0 < t1:
            return Span(t0, t1)
        raise MaskSpecError(f"--mask {text!r}: {part!r} is empty: t1 must be past t0")
    if kind == "random" and re.fullmatch(r"\d*\.?\d+", value) and 0 < float(value) < 1:
        return RandomTokens(float(value))
    raise MaskSpecError(f"--mask {text!r}: cannot read {part!r}; a mask is {SPEC_HELP}")


def read_mask_file(path: Path, text: str) -> np.ndarray:
    """A .png (H, W) or .npy (H, W) / (T, H, W) mask -> bool array, nonzero = fill."""
    if not path.is_file():
        raise MaskSpecError(f"--mask {text!r}: the mask file {path} does not exist")
    if path.suffix.lower() == ".npy":
        try:
            values = np.load(path, allow_pickle=False)
        except (ValueError, EOFError, OSError) as error:  # not .npy, empty or truncated
            raise MaskSpecError(f"--mask {text!r}: cannot read {path} as a numeric .npy array: "
                                f"{type(error).__name__}: {error}") from None
        if values.ndim not in (2, 3) or not (values.dtype == bool or np.issubdtype(values.dtype, np.number)):
            raise MaskSpecError(f"--mask {text!r}: {path} holds a {values.dtype} array of shape {values.shape}; a "
                                "mask is (H, W) or (T, H, W), bool or numbers")
        return values != 0
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("L")) != 0
    except (UnidentifiedImageError, OSError, ValueError) as error:  # ValueError: a truncated header
        raise MaskSpecError(f"--mask {text!r}: cannot read {path} as a PNG image: {error}") from None
