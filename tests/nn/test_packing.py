"""Packed layouts: pack/unpack round trips, groupings, absent modalities take no room."""

import torch

from mmmae.nn.packing import PackedLayout, Packing, token_masks


def test_groups_bundle_equal_lengths_and_cover_every_token():
    packing = Packing([3, 2, 3, 0, 2], "cpu")
    assert packing.seqlens == [3, 2, 3, 2] and packing.total == 10
    covered = torch.cat([index.flatten() for index, _, _ in packing.groups]).sort().values
    assert torch.equal(covered, torch.arange(10))
    lengths = {length: count for _, count, length in packing.groups}
    assert lengths == {2: 2, 3: 2}


def test_one_length_is_a_view():
    (index, count, length), = Packing([4, 4, 4], "cpu").groups
    assert index is None and (count, length) == (3, 4)


def test_pack_unpack_round_trip_with_absent_modalities():
    parts = {"video": torch.randn(3, 4, 2), "audio": torch.randn(3, 2, 2)}
    present = {"video": torch.tensor([True, True, False]), "audio": torch.tensor([True, False, True])}
    layout = PackedLayout(token_masks(parts, present), "cpu")
    x = layout.pack(parts)
    assert x.shape == (4 + 2 + 4 + 2, 2)
    # sample-major: sample 0 video then audio, sample 1 video, sample 2 audio
    assert torch.equal(x[:4], parts["video"][0]) and torch.equal(x[4:6], parts["audio"][0])
    assert torch.equal(x[6:10], parts["video"][1]) and torch.equal(x[10:], parts["audio"][2])
    assert layout.separate.seqlens == [4, 2, 4, 2] and layout.joint.seqlens == [6, 4, 2]
    back = layout.unpack(x, {"video": (3, 4), "audio": (3, 2)})
    assert torch.equal(back["video"][:2], parts["video"][:2]) and not back["video"][2].any()
    assert torch.equal(back["audio"][[0, 2]], parts["audio"][[0, 2]]) and not back["audio"][1].any()


def test_padding_takes_no_room_and_unpacks_to_zeros():
    parts = {"text": torch.randn(2, 4, 3)}
    valid = {"text": torch.tensor([[True, True, False, False], [True, True, True, False]])}
    layout = PackedLayout(token_masks(parts, {"text": torch.ones(2, dtype=torch.bool)}, valid), "cpu")
    x = layout.pack(parts)
    assert layout.separate.seqlens == [2, 3]
    assert torch.equal(x, torch.cat([parts["text"][0, :2], parts["text"][1, :3]]))
    back = layout.unpack(x, {"text": (2, 4)})["text"]
    assert torch.equal(back[valid["text"]], parts["text"][valid["text"]]) and not back[~valid["text"]].any()


def test_pack_promotes_modalities_of_different_dtypes():
    """Under autocast one tokenizer's output can be bf16 and another's float32."""
    parts = {"video": torch.randn(2, 3, 4).bfloat16(), "text": torch.randn(2, 2, 4)}
    masks = {m: torch.ones(x.shape[:2], dtype=torch.bool) for m, x in parts.items()}
    layout = PackedLayout(masks, torch.device("cpu"))
    packed = layout.pack(parts)
    assert packed.dtype == torch.float32
    back = layout.unpack(packed, {m: x.shape[:2] for m, x in parts.items()})
    assert torch.equal(back["video"], parts["video"].float()) and torch.equal(back["text"], parts["text"])
