"""Positional tables at a reference grid, resampled to others: learned (joint and MAE-ST's
separable), fixed with pos_grid; tokenizers and the decoder run at other sizes with them."""

import pytest
import torch

from mmmae.nn.decoder import MaskTokenDecoder
from mmmae.nn.pos_embed import (
    LearnedPositions,
    SeparableLearnedPositions,
    position_table,
    resample_table,
    sincos_pos_embed,
)
from mmmae.tokenizers.audio import AudioTokenizer
from mmmae.tokenizers.frames import FrameTokenizer
from mmmae.tokenizers.video import TubeletTokenizer
from mmmae.types import MaskPlan
from tests.float32_bound import rounding_bound


def coordinate_table(grid: tuple[int, ...]) -> torch.Tensor:
    """(prod(grid), len(grid)): channel a holds the token's coordinate on axis a."""
    axes = torch.meshgrid(*[torch.arange(n, dtype=torch.float) for n in grid], indexing="ij")
    return torch.stack([a.flatten() for a in axes], dim=1)


def test_same_grid_is_the_table_itself():
    table = torch.randn(12, 5)
    assert resample_table(table, (3, 4), (3, 4)) is table
    learned = LearnedPositions(5, (2, 2, 3))
    assert torch.equal(learned((2, 2, 3)), learned.table)


@pytest.mark.parametrize("source,target", [((4, 6), (7, 3)), ((2, 3, 4), (5, 6, 2)), ((5,), (9,))])
def test_resampling_keeps_each_axis_on_its_own_channel(source, target):
    """A channel that varies along one axis only still does after resampling: the (t, h, w) layout is kept."""
    resampled = resample_table(coordinate_table(source), source, target).reshape(*target, len(source))
    for axis in range(len(source)):
        channel = resampled[..., axis]
        for other in set(range(len(source))) - {axis}:  # interpolation: sums of at most 4 x 4 (bicubic) terms
            assert torch.allclose(channel, channel.narrow(other, 0, 1).expand_as(channel),
                                  atol=rounding_bound(channel, 1, 16), rtol=0)
        assert not torch.allclose(channel, channel.flatten()[0].expand_as(channel))


def test_two_d_table_on_a_clip_repeats_per_frame():
    table = torch.randn(6, 4)
    clip = resample_table(table, (2, 3), (5, 2, 3)).reshape(5, 6, 4)
    assert all(torch.equal(clip[t], table) for t in range(5))


def test_separable_learned_is_mae_st_at_its_grid_and_resamples_each_table():
    positions = SeparableLearnedPositions(8, (2, 3, 3))
    t, hw = 2, 9
    expected = positions.spatial.repeat(t, 1) + torch.repeat_interleave(positions.temporal, hw, dim=0)
    assert torch.equal(positions((2, 3, 3)), expected)
    longer = positions((4, 3, 3)).reshape(4, 9, 8)
    # moving in time adds the same vector at every spatial position; 4 entries compared, each a spatial row
    # plus a linearly interpolated temporal one (3 terms)
    assert torch.allclose(longer[1] - longer[0], (longer[1] - longer[0])[:1].expand(9, -1),
                          atol=rounding_bound(longer, 4, 3), rtol=0)
    with pytest.raises(ValueError, match="T, H, W"):
        positions((3, 3))


def test_fixed_table_with_a_reference_grid():
    plain = sincos_pos_embed((2, 3, 3), 8, "joint")
    assert torch.equal(sincos_pos_embed((2, 3, 3), 8, "joint", None, (2, 3, 3)), plain)
    resampled = sincos_pos_embed((4, 6, 6), 8, "joint", None, (2, 3, 3))
    reference = resample_table(plain.double(), (2, 3, 3), (4, 6, 6)).float()  # trilinear: sums of 8 terms
    assert torch.allclose(resampled, reference, atol=rounding_bound(reference, 1, 8), rtol=0)
    assert not torch.allclose(resampled, sincos_pos_embed((4, 6, 6), 8, "joint")), "not re-indexed"


def test_learned_tables_need_a_reference_grid_and_known_names():
    with pytest.raises(ValueError, match="pos_grid"):
        position_table("learned", 8, None, owner="TubeletTokenizer.pos_embed")
    with pytest.raises(ValueError, match="TubeletTokenizer.pos_embed = 'sinusoid'"):
        TubeletTokenizer(dim=8, tubelet=2, patch=4, pos_embed="sinusoid")


def test_fixed_tables_add_no_state():
    assert "positions" not in "".join(TubeletTokenizer(dim=8, tubelet=2, patch=4).state_dict())
    assert "positions" not in "".join(MaskTokenDecoder(in_dim=8, out_dim=4, dim=8, depth=1, heads=2).state_dict())


@pytest.mark.parametrize("pos_embed", ["learned", "learned_separable"])
def test_video_tokenizer_with_a_learned_table_runs_at_other_frame_counts_and_sizes(pos_embed):
    torch.manual_seed(0)
    tokenizer = TubeletTokenizer(dim=8, tubelet=2, patch=4, pos_embed=pos_embed, pos_grid=(2, 2, 2))
    clip = torch.rand(1, 3, 4, 8, 8)
    embed = tokenizer(clip).embed
    exact = embed - tokenizer.proj(tokenizer.standardize(clip)).flatten(2).transpose(1, 2)
    # the same projection on both sides; adding the table and taking the projection away round at |embed|
    assert torch.allclose(exact[0], tokenizer.positions((2, 2, 2)), atol=rounding_bound(embed, 2, 1), rtol=0)
    assert tokenizer(torch.rand(1, 3, 8, 12, 12)).embed.shape == (1, 4 * 3 * 3, 8)


def test_image_and_audio_tokenizers_with_learned_tables_at_other_sizes():
    image = FrameTokenizer(dim=8, patch=4, pos_embed="learned", pos_grid=(2, 2))
    assert image(torch.rand(1, 3, 12, 16)).grid == (3, 4)
    assert image(torch.rand(1, 3, 2, 8, 8)).embed.shape == (1, 8, 8), "a clip: the image table per frame"
    audio = AudioTokenizer(dim=8, num_mel_bins=32, target_length=64, patch=16, pos_embed="learned")
    assert audio.positions.reference == (4, 2)
    longer = AudioTokenizer(dim=8, num_mel_bins=32, target_length=128, patch=16, pos_embed="learned", pos_grid=(4, 2))
    longer.load_state_dict(audio.state_dict())
    assert longer(torch.randn(1, 128, 32)).embed.shape == (1, 16, 8)


def test_decoder_with_a_learned_table_at_another_grid():
    decoder = MaskTokenDecoder(in_dim=8, out_dim=5, dim=8, depth=1, heads=2, pos_embed="learned", pos_grid=(2, 2))
    plan = MaskPlan(keep=torch.tensor([[0, 5]]), predict=torch.tensor([[1, 2, 8]]))
    assert decoder(torch.randn(1, 2, 8), (3, 3), plan).shape == (1, 3, 5)
    assert "positions.table" in decoder.state_dict()
