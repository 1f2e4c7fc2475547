"""Flow estimators: the backward / forward convention, MovingDigits' ground truth, Farneback, RAFT."""

import math

import einops
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import default_collate

from mmmae.data.moving_digits.dataset import MovingDigits
from mmmae.masking.flow import FarnebackFlow, GroundTruthFlow, RAFTFlow
from mmmae.masking.motion import backward_warp


def digits_batch(seed: int, frames: int = 6, size: int = 32, digit_size: int = 12, count: int = 2) -> dict:
    data = MovingDigits(frames=frames, size=size, digit_size=digit_size, min_speed=1.0, max_speed=3.0, seed=seed)
    return default_collate([data[i] for i in range(count)])


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10_000), digit_size=st.integers(8, 16))
def test_ground_truth_backward_flow_is_minus_the_displacement_on_the_next_frames_digit(seed, digit_size):
    batch = digits_batch(seed, digit_size=digit_size)
    flow = GroundTruthFlow()(batch)
    step = batch["position"][:, 1:] - batch["position"][:, :-1]  # (B, T-1, 2) digit displacement t -> t+1
    on_next = batch["digit_mask"][:, 1:, None]
    expected = torch.where(on_next, -step[..., None, None], torch.zeros(()))
    assert flow.dtype == torch.float32 and torch.equal(flow, expected)


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_warping_with_either_direction_carries_the_digit_to_the_other_frame(seed):
    batch = digits_batch(seed)
    mask = batch["digit_mask"].float()[:, :, None]  # (B, T, 1, H, W); the video also blends in the background
    pairs = mask.shape[1] - 1
    backward = GroundTruthFlow()(batch)
    forward = GroundTruthFlow()(batch, backward=[False] * pairs)
    for t in range(pairs):
        next_from_t = backward_warp(mask[:, t], backward[:, t])  # frame t+1 read from frame t
        t_from_next = backward_warp(mask[:, t + 1], forward[:, t])  # frame t read from frame t+1
        torch.testing.assert_close(next_from_t[mask[:, t + 1] > 0], torch.ones(int(mask[:, t + 1].sum())))
        torch.testing.assert_close(t_from_next[mask[:, t] > 0], torch.ones(int(mask[:, t].sum())))


def test_directions_are_chosen_per_pair():
    batch = digits_batch(3)
    pairs = batch["video"].shape[2] - 1
    backward = GroundTruthFlow()(batch)
    forward = GroundTruthFlow()(batch, backward=[False] * pairs)
    torch.testing.assert_close(forward, einops.rearrange(batch["flow"][:, :, :-1], "b xy t h w -> b t xy h w"))
    mixed = GroundTruthFlow()(batch, backward=[t >= 2 for t in range(pairs)])
    assert torch.equal(mixed[:, :2], forward[:, :2]) and torch.equal(mixed[:, 2:], backward[:, 2:])
    with pytest.raises(ValueError, match="backward names 2 frame pairs, the clip has 5"):
        GroundTruthFlow()(batch, backward=[True, False])


def test_missing_side_channel_names_the_key_and_the_estimator():
    batch = {"video": torch.zeros(1, 3, 4, 8, 8)}
    with pytest.raises(KeyError, match=r"GroundTruthFlow\(key='motion'\) needs batch\['motion'\].*'video'"):
        GroundTruthFlow(key="motion")(batch)


def translating_texture(shift: tuple[int, int], size: int = 64) -> torch.Tensor:
    """Two frames (1, 1, 2, size, size) of a smooth random texture; the second moved by shift (dx, dy)."""
    generator = torch.Generator().manual_seed(0)
    texture = torch.rand(1, 1, size // 4, size // 4, generator=generator)
    texture = torch.nn.functional.interpolate(texture, size=(size, size), mode="bicubic", align_corners=False)
    moved = torch.roll(texture, shifts=(shift[1], shift[0]), dims=(2, 3))
    return torch.stack([texture, moved], dim=2).clamp(0, 1)


@pytest.mark.parametrize("backward, sign", [(None, -1), ([False], 1)])
def test_farneback_recovers_a_translation_in_both_directions(backward, sign):
    shift = (3, -2)
    flow = FarnebackFlow()({"video": translating_texture(shift)}, backward=backward)
    assert flow.shape == (1, 1, 2, 64, 64) and flow.dtype == torch.float32
    centre = flow[0, 0, :, 16:48, 16:48].flatten(1).median(dim=1).values
    for got, want in zip(centre.tolist(), shift):
        assert math.copysign(1, got) == sign * math.copysign(1, want)
        assert abs(got - sign * want) <= 0.3 * abs(want)


def test_raft_weights_must_be_a_local_file(tmp_path):
    missing = tmp_path / "raft_small.pth"
    with pytest.raises(FileNotFoundError, match=rf"RAFTFlow\.weights = '{missing}'"):
        RAFTFlow(weights=str(missing))


def test_raft_loads_local_weights_and_gives_one_field_per_pair(tmp_path):
    from torchvision.models.optical_flow import raft_small

    path = tmp_path / "raft_small.pth"
    torch.save(raft_small(weights=None, progress=False).state_dict(), path)
    video = torch.rand(1, 3, 2, 32, 24)  # smaller than RAFT's 128 minimum: resized there and back
    flow = RAFTFlow(weights=str(path), iters=1)({"video": video})
    assert flow.shape == (1, 1, 2, 32, 24) and flow.dtype == torch.float32 and flow.isfinite().all()
