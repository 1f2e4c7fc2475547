"""DriftingStream: MovingDigits clips in order, their look drifting smoothly and monotonely."""

import pytest
import torch

from mmmae.data.moving_digits.dataset import MovingDigits
from mmmae.data.moving_digits.drift import DriftingStream

EPS = torch.finfo(torch.float32).eps


def clips(num_samples: int = 9, **kwargs) -> MovingDigits:
    return MovingDigits(num_samples=num_samples, frames=4, size=16, digit_size=8, **kwargs)


def test_severity_rises_linearly_from_the_onset_to_one():
    assert [DriftingStream(clips()).severity(t) for t in range(9)] == pytest.approx([t / 8 for t in range(9)])
    late = DriftingStream(clips(), onset=0.5)
    assert [late.severity(t) for t in range(5)] == [0.0] * 5
    assert [late.severity(t) for t in range(4, 9)] == pytest.approx([0, 0.25, 0.5, 0.75, 1])
    with pytest.raises(IndexError, match="out of range"):
        late.severity(9)


def test_items_are_the_clips_in_order_with_only_the_video_drifted():
    data, stream = clips(), DriftingStream(clips())
    for t in range(len(stream)):
        item, clip = stream[t], data[t]
        assert set(item) == set(clip) | {"drift"} and item["drift"] == pytest.approx(stream.severity(t))
        for key in clip.keys() - {"video"}:
            assert torch.equal(item[key], clip[key]), key
        assert item["video"].shape == clip["video"].shape and 0 <= item["video"].min() <= item["video"].max() <= 1
    assert torch.equal(stream[0]["video"], data[0]["video"])  # severity 0: untouched
    assert not torch.equal(stream[8]["video"], data[8]["video"])


def test_contrast_and_brightness_follow_the_severity_exactly():
    """With contrast 0.5 and brightness -0.2 no pixel of [0, 1] leaves [0, 1], so nothing clamps."""
    data, stream = clips(), DriftingStream(clips(), contrast=0.5, brightness=-0.2, blur=0.0)
    spreads = []
    for t in range(len(stream)):
        s, video = stream.severity(t), data[t]["video"]
        expected = 0.5 + (video - 0.5) * (1 - 0.5 * s) - 0.2 * s
        torch.testing.assert_close(stream[t]["video"], expected, rtol=0, atol=4 * EPS)
        spreads.append(float((stream[t]["video"] - stream[t]["video"].mean()).abs().mean()
                             / (video - video.mean()).abs().mean()))
    assert spreads == pytest.approx([1 - 0.5 * stream.severity(t) for t in range(9)], rel=1e-5)


def test_blur_grows_with_the_severity():
    """The mean squared difference between horizontal neighbours of one clip falls as the blur grows."""
    stream = DriftingStream(clips(), contrast=1.0, brightness=0.0, blur=1.5)
    video = clips()[4]["video"]
    roughness = [float(stream.drifted(video, s).diff(dim=-1).square().mean()) for s in (0.0, 0.25, 0.5, 1.0)]
    assert roughness == sorted(roughness, reverse=True) and roughness[-1] < roughness[0] / 2


def test_the_stream_is_deterministic():
    a, b = DriftingStream(clips()), DriftingStream(clips())
    for t in (0, 5, 8):
        assert all(torch.equal(a[t][k], b[t][k]) for k in a[t])


@pytest.mark.parametrize("kwargs, match", [
    ({"contrast": 0.0}, "contrast > 0"), ({"blur": -1.0}, "blur >= 0"), ({"onset": 1.0}, "onset < 1"),
    ({"brightness": 2.0}, "brightness"),
])
def test_bad_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DriftingStream(clips(), **kwargs)


def test_clips_without_video_are_refused():
    with pytest.raises(ValueError, match="with video"):
        DriftingStream(clips(modalities=("audio",)))
