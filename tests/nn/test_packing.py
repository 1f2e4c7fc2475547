"""Packed layouts: pack/unpack round trips, groupings, absent modalities take no room."""

import torch

from mmmae.nn.packing import PackedLayout, Packing


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
    layout = PackedLayout({"video": 4, "audio": 2}, present, "cpu")
    x = layout.pack(parts)
    assert x.shape == (4 + 2 + 4 + 2, 2)
    # sample-major: sample 0 video then audio, sample 1 video, sample 2 audio
    assert torch.equal(x[:4], parts["video"][0]) and torch.equal(x[4:6], parts["audio"][0])
    assert torch.equal(x[6:10], parts["video"][1]) and torch.equal(x[10:], parts["audio"][2])
    assert layout.separate.seqlens == [4, 2, 4, 2] and layout.joint.seqlens == [6, 4, 2]
    back = layout.unpack(x, 3)
    assert torch.equal(back["video"][:2], parts["video"][:2]) and not back["video"][2].any()
    assert torch.equal(back["audio"][[0, 2]], parts["audio"][[0, 2]]) and not back["audio"][1].any()
