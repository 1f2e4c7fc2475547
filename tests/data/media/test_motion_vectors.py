"""Codec motion vectors read at decode time: PyAV round trip, I-frame filling, the dataset wrapper."""

import io

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from mmmae.data.media import motion_vectors as mv
from mmmae.data.moving_digits.dataset import MovingDigits

FRAMES, SIZE, SQUARE, SPEED, TOP = 8, 64, 16, 4, 24


def square_clip() -> tuple[np.ndarray, np.ndarray]:
    """A checkered bright square moving SPEED px/frame to the right over a static texture:
    frames (T, 64, 64, 3) uint8 and the square's mask (T, 64, 64) bool."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    background = 90 + 40 * np.sin(x / 4) + 40 * np.cos(y / 6) + rng.integers(0, 20, (SIZE, SIZE))
    checker = 200 + 50 * ((np.add.outer(np.arange(SQUARE), np.arange(SQUARE)) // 4) % 2)
    frames = np.repeat(np.repeat(background[None, ..., None], FRAMES, 0), 3, 3)
    mask = np.zeros((FRAMES, SIZE, SIZE), bool)
    for t in range(FRAMES):
        left = 4 + SPEED * t
        frames[t, TOP : TOP + SQUARE, left : left + SQUARE] = checker[..., None]
        mask[t, TOP : TOP + SQUARE, left : left + SQUARE] = True
    return frames.clip(0, 255).astype(np.uint8), mask


def dilate(mask: np.ndarray, steps: int = 1) -> np.ndarray:
    """(..., H, W) bool grown by `steps` pixels in the 8 directions, per 2D slice."""
    grown = torch.from_numpy(mask).float().reshape(-1, 1, *mask.shape[-2:])
    grown = torch.nn.functional.max_pool2d(grown, 2 * steps + 1, stride=1, padding=steps)
    return grown.reshape(mask.shape).numpy() > 0


def cells(mask: np.ndarray) -> np.ndarray:
    """Pixel mask (..., H, W) -> cell mask (..., H/4, W/4): cells touching the mask."""
    return mask.reshape(*mask.shape[:-2], mask.shape[-2] // mv.CELL, mv.CELL, mask.shape[-1] // mv.CELL, mv.CELL).any(
        axis=(-3, -1)
    )


@pytest.mark.parametrize("codec, in_memory", [("libx264", True), ("mpeg4", False)])
def test_round_trip_puts_motion_on_the_moving_square_only(codec, in_memory, tmp_path):
    frames, mask = square_clip()
    target = io.BytesIO() if in_memory else tmp_path / "clip.mkv"
    mv.encode_video(frames, target, codec=codec)
    if in_memory:
        target.seek(0)
    decoded, magnitude = mv.decode_with_motion_vectors(target)

    assert decoded.shape == frames.shape and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - frames).mean() < 4
    assert magnitude.shape == (FRAMES, SIZE // 4, SIZE // 4) and magnitude.dtype == np.float32
    swept = cells(mask[1:] | mask[:-1])  # P-frame t: motion from t-1 to t
    near = dilate(swept)  # one cell of slack at block edges
    for t in range(1, FRAMES):
        hottest = np.unravel_index(magnitude[t].argmax(), magnitude[t].shape)
        assert near[t - 1][hottest], f"frame {t}: the largest motion lies off the square's path"
        assert np.all(magnitude[t][~near[t - 1]] < 0.5), f"frame {t}: motion on the static background"
        inside = magnitude[t][~dilate(~cells(mask[t]))]  # cells at least one cell inside the square
        assert abs(np.median(inside) - SPEED) <= 1, f"frame {t}: the square moves {SPEED} px, not {np.median(inside)}"
    # frame 0 is the I-frame: no vectors, filled from the nearest P-frame (frame 1)
    np.testing.assert_array_equal(magnitude[0], magnitude[1])
    if in_memory:
        target.seek(0)
    np.testing.assert_array_equal(mv.decode_motion_vectors(target), magnitude)


def test_fill_in_time_interpolates_gaps_and_copies_at_the_ends():
    values = np.array([[0.0, 7.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [3.0, 5.0, 0.0]])
    known = np.array([[False, True, False], [True, False, False], [False, False, False], [True, True, False]])
    filled = mv.fill_in_time(values, known)
    np.testing.assert_allclose(filled[:, 0], [1.0, 1.0, 2.0, 3.0])  # before the first: copy; between: linear
    np.testing.assert_allclose(filled[:, 1], [7.0, 19 / 3, 17 / 3, 5.0])
    np.testing.assert_array_equal(filled[:, 2], 0.0)  # never known: 0


def test_encode_rejects_odd_sizes_and_wrong_dtypes():
    with pytest.raises(ValueError, match="even"):
        mv.encode_video(np.zeros((2, 15, 16, 3), np.uint8), io.BytesIO())
    with pytest.raises(ValueError, match="uint8"):
        mv.encode_video(np.zeros((2, 16, 16, 3), np.float32), io.BytesIO())


@pytest.fixture(scope="module")
def digits() -> MovingDigits:
    return MovingDigits(num_samples=4, frames=8, size=32, digit_size=16)


def test_wrapper_adds_a_pixel_aligned_map_with_its_mass_on_the_digit(digits):
    wrapped = mv.WithMotionVectors(digits)
    assert len(wrapped) == len(digits)
    for index in range(2):
        sample = wrapped[index]
        original = digits[index]
        assert torch.equal(sample["video"], original["video"])
        magnitude, digit = sample["motion_vectors"].numpy(), original["digit_mask"].numpy()
        assert magnitude.shape == (8, 32, 32) and magnitude.dtype == np.float32
        moved = np.abs(np.diff(original["position"].numpy(), axis=0)).sum(axis=1) > 0  # frame t vs t-1
        swept = dilate(digit[1:] | digit[:-1], steps=2)[moved]
        on_digit = (magnitude[1:][moved] * swept).sum() / magnitude[1:][moved].sum()
        assert on_digit > 0.7, f"sample {index}: only {on_digit:.2f} of the motion lies on the digit"
        background = magnitude[1:][moved][~swept]
        assert (background > 0).mean() < 0.1, "the static background should carry almost no motion"
        assert background.mean() < 0.1 * magnitude[1:][moved][swept].mean()
    batch = default_collate([wrapped[0], wrapped[1]])
    assert batch["motion_vectors"].shape == (2, 8, 32, 32)


def test_wrapper_cache_is_read_back(digits, tmp_path, monkeypatch):
    wrapped = mv.WithMotionVectors(digits, key="mv", cache_dir=str(tmp_path))
    first = wrapped[0]["mv"]
    assert len(list(tmp_path.glob("*.npy"))) == 1

    def no_encoding(*args, **kwargs):
        raise AssertionError("the cached map should have been used")

    monkeypatch.setattr(mv, "clip_motion_vectors", no_encoding)
    assert torch.equal(wrapped[0]["mv"], first)


def test_wrapper_needs_video():
    wrapped = mv.WithMotionVectors([{"audio": torch.zeros(4)}])
    with pytest.raises(KeyError, match="WithMotionVectors needs sample\\['video'\\]"):
        wrapped[0]
