"""Mask specs of `mmmae inpaint`: each kind hides what it says, unions, files, and clean errors."""

import numpy as np
import pytest
import torch
from PIL import Image

from mmmae.inpaint_masks import MaskSpecError, parse_mask

SHAPE, KERNEL = (8, 16, 16), (2, 4, 4)


def test_a_box_hides_its_rows_columns_and_frames_ends_excluded():
    mask = parse_mask("box:2,4,6,12@1-3").pixels(SHAPE, KERNEL)
    expected = torch.zeros(SHAPE, dtype=torch.bool)
    expected[1:3, 2:6, 4:12] = True
    assert torch.equal(mask, expected)
    assert parse_mask("box:0,0,1,1").pixels(SHAPE, KERNEL)[:, 0, 0].all()


def test_a_span_hides_whole_frames_and_parts_join_with_plus():
    mask = parse_mask("span:6-8+box:0,0,2,2@0-1").pixels(SHAPE, KERNEL)
    assert mask[6:].all() and not mask[1:6].any()
    assert mask[0].sum() == 4


def test_random_hides_a_share_of_whole_tokens_reproducibly():
    spec = parse_mask("random:0.75")
    mask = spec.pixels(SHAPE, KERNEL, torch.Generator().manual_seed(3))
    tokens = mask.view(4, 2, 4, 4, 4, 4).permute(0, 2, 4, 1, 3, 5).reshape(64, -1)
    assert (tokens.all(dim=1) | ~tokens.any(dim=1)).all()  # every token wholly hidden or wholly visible
    assert tokens.all(dim=1).sum() == 48
    assert torch.equal(mask, spec.pixels(SHAPE, KERNEL, torch.Generator().manual_seed(3)))
    assert not torch.equal(mask, spec.pixels(SHAPE, KERNEL, torch.Generator().manual_seed(4)))


def test_mask_files_png_for_every_frame_and_npy_per_frame(tmp_path):
    image = np.zeros((16, 16), np.uint8)
    image[3, 5] = 255
    Image.fromarray(image).save(tmp_path / "m.png")
    mask = parse_mask(str(tmp_path / "m.png")).pixels(SHAPE, KERNEL)
    assert mask[:, 3, 5].all() and mask.sum() == 8
    values = np.zeros(SHAPE, bool)
    values[2, 0, 0] = True
    np.save(tmp_path / "m.npy", values)
    assert torch.equal(parse_mask(str(tmp_path / "m.npy")).pixels(SHAPE, KERNEL), torch.from_numpy(values))


@pytest.mark.parametrize("spec, message", [
    ("box:1,2,3", "cannot read 'box:1,2,3'"),
    ("box:4,0,2,2", "is empty"),
    ("span:3-3", "is empty"),
    ("random:1.5", "cannot read 'random:1.5'"),
    ("blob:1", "a mask is box:"),
    ("missing.png", "the mask file missing.png does not exist"),
])
def test_bad_specs_are_named(spec, message):
    with pytest.raises(MaskSpecError, match=message):
        parse_mask(spec)


def test_parts_that_do_not_fit_the_clip_are_named(tmp_path):
    with pytest.raises(MaskSpecError, match=r"box 0,0,20,4@0-8 does not fit the clip of 8 frames of 16x16"):
        parse_mask("box:0,0,20,4").pixels(SHAPE, KERNEL)
    with pytest.raises(MaskSpecError, match="span 4-9 does not fit"):
        parse_mask("span:4-9").pixels(SHAPE, KERNEL)
    np.save(tmp_path / "m.npy", np.zeros((8, 8), bool))
    with pytest.raises(MaskSpecError, match="is 8x8, but the clip the model sees is 8 frames of 16x16"):
        parse_mask(str(tmp_path / "m.npy")).pixels(SHAPE, KERNEL)
    np.save(tmp_path / "o.npy", np.array(["a"], dtype=object), allow_pickle=True)
    with pytest.raises(MaskSpecError, match="cannot read .* as a numeric .npy array"):
        parse_mask(str(tmp_path / "o.npy"))


@pytest.mark.parametrize("content", [b"", b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, "])
def test_empty_or_truncated_npy_masks_are_named(tmp_path, content):
    (tmp_path / "bad.npy").write_bytes(content)
    with pytest.raises(MaskSpecError, match=r"cannot read .*bad\.npy as a numeric .npy array"):
        parse_mask(str(tmp_path / "bad.npy"))
