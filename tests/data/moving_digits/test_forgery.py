"""ForgedMovingDigits: real clips untouched, balanced labels, fakes forged only in their span,
flow that follows what is rendered."""

import pytest
import torch

from mmmae.data.moving_digits.dataset import MovingDigits
from mmmae.data.moving_digits.forgery import FAKE_KINDS, ForgedMovingDigits

SIDE = ("video", "flow", "digit_mask", "position")


def clips(**settings) -> MovingDigits:
    return MovingDigits(**{"split": "test", "num_samples": 16, "frames": 8, "size": 16, "digit_size": 12,
                           "min_speed": 0.25, "max_speed": 0.5, **settings})


def changed_frames(forged: torch.Tensor, real: torch.Tensor, time_axis: int) -> list[int]:
    moved = (forged != real).movedim(time_axis, 0)
    return moved.flatten(1).any(dim=1).nonzero().flatten().tolist()


def test_real_clips_are_moving_digits_samples_and_labels_are_balanced():
    real, forged = clips(), ForgedMovingDigits(clips())
    samples = [forged[i] for i in range(16)]
    assert [int(s["fake"]) for s in samples] == [i % 2 for i in range(16)]
    assert [FAKE_KINDS[int(s["fake_kind"])] for s in samples[1::2]] == ["appearance", "motion"] * 4
    for i in range(0, 16, 2):
        original = real[i]
        assert set(samples[i]) == set(original) | {"fake", "fake_kind", "fake_span"}
        assert all(torch.equal(samples[i][key], original[key]) for key in original)
        assert samples[i]["fake_span"].tolist() == [0, 0]
    assert all(int(ForgedMovingDigits(clips(), kinds=("motion",))[i]["fake_kind"]) == 2 for i in range(1, 16, 2))


@pytest.mark.parametrize("span", [1, 3, 8])
def test_fakes_differ_only_in_their_span(span):
    real, forged = clips(), ForgedMovingDigits(clips(), span=span)
    for i in range(1, 16, 2):
        sample, original = forged[i], real[i]
        start, stop = sample["fake_span"].tolist()
        assert stop - start == span
        frames = list(range(start, stop))
        assert changed_frames(sample["video"], original["video"], 1) == frames  # every frame of the span changes
        kind = FAKE_KINDS[int(sample["fake_kind"])]
        flow_frames = changed_frames(sample["flow"], original["flow"], 1)
        if kind == "appearance":
            assert torch.equal(sample["position"], original["position"])
            assert set(flow_frames) <= set(frames)
        else:  # the flow into the span changes too
            assert changed_frames(sample["position"], original["position"], 0) == frames
            assert set(flow_frames) <= set(range(max(start - 1, 0), stop))
        for key in ("label", "direction", "speed", "index"):
            assert torch.equal(sample[key], original[key])
        assert all(torch.equal(a, b) for a, b in zip((forged[i][k] for k in SIDE), (sample[k] for k in SIDE)))


def test_flow_follows_the_rendered_motion_on_the_digit():
    real, forged = clips(), ForgedMovingDigits(clips(), jitter=2)
    for i in range(1, 16, 2):
        sample = forged[i]
        flow, mask, position = sample["flow"], sample["digit_mask"], sample["position"]
        assert (flow[:, ~mask] == 0).all()  # the background is static
        for t in range(7):  # frame t's flow is the displacement to frame t + 1 on the digit
            step = position[t + 1] - position[t]
            assert (flow[:, t][:, mask[t]] == step[:, None]).all()
        if FAKE_KINDS[int(sample["fake_kind"])] == "motion":
            start, stop = sample["fake_span"].tolist()
            jump = (position[start:stop] - real[i]["position"][start:stop]).abs()
            assert ((jump.amax(dim=1) >= 1) & (jump.amax(dim=1) <= 2)).all()


def test_blend_mixes_the_clip_with_the_other_digits_rendering():
    real = clips()
    full, half = (ForgedMovingDigits(clips(), kinds=("appearance",), blend=b, span=8)[1] for b in (1.0, 0.5))
    original = real[1]
    # blend 1 is the other digit's rendering (the same draw: the same other digit); 0.5 the mean of the two
    # clips, each value in [0, 1] off by the rounding of one subtraction, product and sum
    eps = torch.finfo(torch.float32).eps
    assert torch.allclose(half["video"], (original["video"] + full["video"]) / 2, atol=3 * eps, rtol=0)
    assert torch.equal(half["digit_mask"], full["digit_mask"] | original["digit_mask"])
    assert not torch.equal(full["digit_mask"], original["digit_mask"])


def test_bad_settings_name_their_binding():
    with pytest.raises(ValueError, match="ForgedMovingDigits.kinds = \\('swap',\\)"):
        ForgedMovingDigits(clips(), kinds=("swap",))
    with pytest.raises(ValueError, match="ForgedMovingDigits.jitter = 3: need 1 <= jitter <= .* = 2"):
        ForgedMovingDigits(clips(), jitter=3)
    with pytest.raises(ValueError, match="ForgedMovingDigits.span = 9"):
        ForgedMovingDigits(clips(), span=9)
    with pytest.raises(ValueError, match="need 'video' in MovingDigits.modalities"):
        ForgedMovingDigits(clips(modalities=["audio"]))
