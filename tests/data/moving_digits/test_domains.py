"""Held-out digit classes (MovingDigits.classes) and the second domain (TargetDomain, joined)."""

import pytest
import torch

from mmmae.data.moving_digits.dataset import MovingDigits
from mmmae.data.moving_digits.domains import TargetDomain, joined

SMALL = dict(frames=4, size=16, digit_size=8, num_samples=40)


def test_classes_restrict_the_digits_drawn_and_none_leaves_every_sample_unchanged():
    held_out = MovingDigits(split="test", classes=[5, 6, 7, 8, 9], **SMALL)
    assert {int(held_out[i]["label"]) for i in range(len(held_out))} == {5, 6, 7, 8, 9}
    everything, default = MovingDigits(split="test", classes=None, **SMALL), MovingDigits(split="test", **SMALL)
    assert all(torch.equal(everything[i]["video"], default[i]["video"]) for i in range(len(default)))
    assert {int(default[i]["label"]) for i in range(len(default))} - {5, 6, 7, 8, 9}  # the default draws others too


@pytest.mark.parametrize("classes", [[], [3, 3], [4, 10]])
def test_bad_classes_are_named(classes):
    with pytest.raises(ValueError, match=r"MovingDigits.classes = .*: need distinct digit classes from 0..9"):
        MovingDigits(classes=classes)


def test_the_target_domain_is_deterministic_and_differs_from_the_source():
    source = MovingDigits(split="test", classes=[5, 6, 7, 8, 9], **SMALL)
    target = TargetDomain(source, noise=0.05)
    first, again, original = target[3], TargetDomain(source, noise=0.05)[3], source[3]
    assert torch.equal(first["video"], again["video"])
    assert first["video"].shape == original["video"].shape and 0 <= first["video"].min() <= first["video"].max() <= 1
    background = ~original["digit_mask"]
    # The background is a new texture, inverted: nowhere near the source's background on average.
    assert (first["video"] - original["video"]).abs()[:, background].mean() > 0.1
    assert not torch.equal(target[4]["video"], TargetDomain(source, noise=0.05, seed=1)[4]["video"])
    assert int(first["label"]) == int(original["label"]) and torch.equal(first["flow"], original["flow"])


def test_without_noise_the_digit_s_pixels_are_the_source_s_inverted():
    source = MovingDigits(split="test", **SMALL)
    shifted, original = TargetDomain(source, noise=0.0)[0], source[0]
    digit = original["digit_mask"]
    torch.testing.assert_close(shifted["video"][:, digit], 1 - original["video"][:, digit])


def test_unlabelled_target_clips_are_labelled_minus_one_and_joined_after_the_source():
    source = MovingDigits(split="train", classes=[0, 1, 2, 3, 4], **SMALL)
    target = TargetDomain(MovingDigits(split="train", classes=[5, 6, 7, 8, 9], **SMALL), unlabelled=True)
    both = joined([source, target])
    assert len(both) == 80
    assert int(both[0]["label"]) in range(5) and int(both[40]["label"]) == -1
    torch.testing.assert_close(both[40]["video"], target[0]["video"])
