import gin
import numpy as np
import pytest
import torch
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2.functional import resized_crop

from mmmae.data.transforms import (
    CenterCrop,
    HorizontalFlip,
    Mixup,
    MultiScaleCrop,
    RandomResizedCrop,
    SpecAugment,
    VideoTransform,
    numpy_rng,
)


def ramp_clip(frames: int = 4, height: int = 48, width: int = 64) -> torch.Tensor:
    """Float (T, 3, H, W): one random image plus 0.1 t on frame t, so any shared crop keeps the offsets."""
    image = torch.rand(3, height, width, generator=torch.Generator().manual_seed(0)) * 0.5
    return torch.stack([image + 0.1 * t for t in range(frames)])


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


@pytest.mark.parametrize("step", [MultiScaleCrop(16), MultiScaleCrop(16, fix_crop=False), RandomResizedCrop(16),
                                  CenterCrop(16)])
def test_crops_are_the_same_for_every_frame(step):
    clip = ramp_clip()
    for seed in range(5):
        out, info = step(clip, rng(seed))
        assert out.shape == (4, 3, 16, 16)
        for t in range(4):  # each frame is its own crop of the reported box, and the frame offsets survive
            torch.testing.assert_close(out[t] - out[0], torch.full_like(out[0], 0.1 * t), atol=1e-5, rtol=0)
        if not isinstance(step, CenterCrop):
            alone = resized_crop(clip[2:3], *info["box"], size=[16, 16], interpolation=InterpolationMode.BILINEAR,
                                 antialias=True)
            torch.testing.assert_close(out[2:3], alone)


@pytest.mark.parametrize("step", [MultiScaleCrop((12, 20)), RandomResizedCrop((12, 20)), CenterCrop((12, 20))])
def test_output_size_dtype_and_range(step):
    clip = torch.randint(0, 256, (3, 3, 40, 50), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    out, _ = step(clip, rng())
    assert out.shape == (3, 3, 12, 20) and out.dtype == torch.uint8
    video, info = VideoTransform([step, HorizontalFlip()])(clip, rng())
    assert video.shape == (3, 3, 12, 20) and video.dtype == torch.float32  # (C, T, H, W)
    assert 0 <= video.min() and video.max() <= 1 and isinstance(info["flipped"], bool)
    full = VideoTransform()(torch.full((2, 3, 4, 4), 255, dtype=torch.uint8), rng())[0]
    assert full.shape == (3, 2, 4, 4) and torch.equal(full, torch.ones_like(full))


def test_multi_scale_crop_boxes_follow_videomae():
    height, width = 120, 160
    step = MultiScaleCrop(100)  # base 120: sides 120, 105, 90, 79 (none within 3 px of 100)
    sides = [120, 105, 90, 79]
    allowed = {(sides[i], sides[j]) for i in range(4) for j in range(4) if abs(i - j) <= 1}
    assert set(step.crop_sizes(height, width)) == allowed
    boxes = [step.box(rng(seed), height, width) for seed in range(400)]
    assert {(h, w) for _, _, h, w in boxes} == allowed
    for top, left, h, w in boxes:
        step_h, step_w = (height - h) // 4, (width - w) // 4
        corners = {(row * step_h, col * step_w) for row in (0, 4) for col in (0, 4)}
        assert (top, left) in corners | {(2 * step_h, 2 * step_w)}
    more = MultiScaleCrop(100, scales=(0.5,), more_fix_crop=True)
    assert len({more.box(rng(seed), height, width)[:2] for seed in range(400)}) == 13


def test_multi_scale_crop_snaps_near_sizes():
    sizes = MultiScaleCrop(104, scales=(1, .875)).crop_sizes(120, 160)  # 105 -> 104
    assert sizes == [(120, 120), (120, 104), (104, 120), (104, 104)]
    assert MultiScaleCrop(124, scales=(1,)).crop_sizes(122, 160) == [(122, 124)]  # snapped up, capped at the image


def test_random_resized_crop_area_and_aspect():
    step = RandomResizedCrop(8, scale=(0.25, 0.5), ratio=(0.5, 2.0))
    for seed in range(50):
        top, left, h, w = step(ramp_clip(1, 60, 80), rng(seed))[1]["box"]
        assert 0 <= top <= 60 - h and 0 <= left <= 80 - w
        assert 0.2 <= h * w / (60 * 80) <= 0.55 and 0.45 <= w / h <= 2.2


def test_center_crop_is_centred():
    ramp = torch.linspace(0, 1, 90).expand(1, 3, 30, 90)  # horizontal gradient, H 30, W 90
    out, info = CenterCrop(20)(ramp)
    assert out.shape == (1, 3, 20, 20) and info["box"] == (0, 30, 30, 30)
    assert abs(out.mean().item() - 0.5) < 0.01  # symmetric about the image's centre:
    torch.testing.assert_close(out[..., :10].flip(-1), 1 - out[..., 10:], atol=0.01, rtol=0)
    assert CenterCrop(20, short_side=40)(ramp)[1]["box"] == (8, 38, 15, 15)  # 40 x 120, crop at (10, 50)


def test_horizontal_flip_mirrors_every_frame_and_reports_it():
    clip = ramp_clip()
    out, info = HorizontalFlip(p=1.0)(clip, rng())
    assert info == {"flipped": True} and torch.equal(out, clip.flip(-1))
    out, info = HorizontalFlip(p=0.0)(clip, rng())
    assert info == {"flipped": False} and torch.equal(out, clip)
    flips = [HorizontalFlip()(clip, rng(seed))[1]["flipped"] for seed in range(200)]
    assert 70 < sum(flips) < 130
    assert VideoTransform([HorizontalFlip(1.0), HorizontalFlip(1.0)])(clip, rng())[1]["flipped"] is False


def test_video_transform_is_reproducible_from_a_seed():
    clip = torch.randint(0, 256, (4, 3, 40, 48), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    transform = VideoTransform([MultiScaleCrop(16, fix_crop=False), RandomResizedCrop(16), HorizontalFlip()])
    runs = [transform(clip, rng(seed)) for seed in (7, 7, 8)]
    assert torch.equal(runs[0][0], runs[1][0]) and runs[0][1] == runs[1][1]
    assert runs[0][1] != runs[2][1]
    seeded = [transform(clip, torch.Generator().manual_seed(3)) for _ in range(2)]  # torch generators work too
    assert torch.equal(seeded[0][0], seeded[1][0]) and seeded[0][1] == seeded[1][1]
    with pytest.raises(TypeError, match="Generator"):
        numpy_rng(3)


def test_video_transform_from_gin():
    gin.parse_config("""
        mmmae.VideoTransform.steps = [@mmmae.MultiScaleCrop(), @mmmae.HorizontalFlip()]
        mmmae.MultiScaleCrop.size = 16
        mmmae.HorizontalFlip.p = 1.0
    """)
    video, info = VideoTransform()(ramp_clip(), rng())
    assert video.shape == (3, 4, 16, 16) and info["flipped"] and len(info["box"]) == 4


def test_bad_input_names_the_transform():
    with pytest.raises(ValueError, match="HorizontalFlip needs a clip"):
        HorizontalFlip()(torch.zeros(3, 8, 8), rng())
    with pytest.raises(ValueError, match="MultiScaleCrop.size"):
        MultiScaleCrop((0, 4))


def _bands(masked: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the whole rows and whole columns that are masked in a (R, C) boolean map."""
    return masked.all(1).nonzero().flatten(), masked.all(0).nonzero().flatten()


def test_spec_augment_masks_whole_bands():
    fbank = torch.rand(100, 32) + 1  # (T, F), never zero
    step, widths = SpecAugment(freq_mask=10, time_mask=20), []
    for seed in range(20):
        out = step(fbank, rng(seed))
        masked = out == 0
        steps, bins = _bands(masked)
        assert torch.equal(masked, masked.all(1, keepdim=True) | masked.all(0, keepdim=True))  # nothing but bands
        for band, limit in ((steps, 20), (bins, 10)):  # one contiguous band each, narrower than its parameter
            assert len(band) < limit and (len(band) == 0 or band[-1] - band[0] == len(band) - 1)
        torch.testing.assert_close(out[~masked], fbank[~masked])
        widths.append((len(steps), len(bins)))
    assert min(w for w, _ in widths) < max(w for w, _ in widths) and max(b for _, b in widths) > 0
    assert torch.equal(step(fbank, rng(4)), step(fbank, rng(4)))
    state = torch.get_rng_state()
    step(fbank, rng(5))
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is untouched


def test_spec_augment_layouts_and_repeats():
    fbank = torch.rand(2, 32, 100) + 1  # (B, F, T): the same bands in every leading index
    out = SpecAugment(freq_mask=8, time_mask=30, masks=3, mask_value=-1.0, time_first=False)(fbank, rng(1))
    masked = out == -1
    assert torch.equal(masked[0], masked[1]) and masked.any()
    bins, steps = _bands(masked[0])
    assert len(bins) <= 3 * 7 and len(steps) <= 3 * 29
    with pytest.raises(ValueError, match="more bands"):
        SpecAugment()(torch.rand(100, 32), rng())


def _batch(size: int = 5) -> dict:
    gen = torch.Generator().manual_seed(0)
    return {"video": torch.rand(size, 3, 2, 8, 10, generator=gen), "audio": torch.rand(size, 40, generator=gen),
            "label": torch.tensor([0, 1, 2, 3, 1])[:size], "index": torch.arange(size)}


def smooth(label: torch.Tensor, classes: int, eps: float) -> torch.Tensor:
    return torch.nn.functional.one_hot(label, classes).float() * (1 - eps) + eps / classes


def test_mixup_mixes_each_sample_with_the_reversed_batch():
    batch = _batch()
    out = Mixup(alpha=0.8, cutmix_alpha=0.0, num_classes=4)(batch, rng(3))
    lam = out["mix_lambda"].item()
    assert 0 < lam < 1 and torch.equal(out["index"], batch["index"])
    for key in ("video", "audio"):
        torch.testing.assert_close(out[key], lam * batch[key] + (1 - lam) * batch[key][[4, 3, 2, 1, 0]])
    soft = out["soft_label"]
    torch.testing.assert_close(soft.sum(1), torch.ones(5))
    expected = lam * smooth(batch["label"], 4, 0.1) + (1 - lam) * smooth(batch["label"].flip(0), 4, 0.1)
    torch.testing.assert_close(soft, expected)
    assert torch.equal(batch["video"], _batch()["video"])  # the input batch is not modified


def test_cutmix_pastes_one_box_of_the_partner_into_every_frame():
    batch = _batch(4)
    for seed in range(10):
        out = Mixup(alpha=0.0, cutmix_alpha=1.0, num_classes=4)(batch, rng(seed))
        lam = out["mix_lambda"].item()
        from_partner = out["video"] == batch["video"].flip(0)
        assert torch.equal(from_partner | (out["video"] == batch["video"]), torch.ones_like(from_partner))
        region = from_partner[0, 0, 0]  # (H, W); the same for every sample, channel and frame
        assert torch.equal(from_partner, region.expand_as(from_partner))
        rows, cols = region.any(1).nonzero().flatten(), region.any(0).nonzero().flatten()
        if region.any():  # a box: every pixel between its extreme rows and columns
            assert region[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].all() and region.sum() == len(rows) * len(cols)
        assert lam == pytest.approx(1 - region.float().mean().item())
        torch.testing.assert_close(out["audio"], lam * batch["audio"] + (1 - lam) * batch["audio"].flip(0))
        torch.testing.assert_close(out["soft_label"].sum(1), torch.ones(4))
        torch.testing.assert_close(out["soft_label"][0], lam * smooth(torch.tensor(0), 4, 0.1)
                                   + (1 - lam) * smooth(torch.tensor(3), 4, 0.1))


def test_mixup_probability_switch_and_errors():
    batch = _batch()
    out = Mixup(prob=0.0, num_classes=4)(batch, rng())
    assert out["mix_lambda"] == 1 and torch.equal(out["video"], batch["video"])
    torch.testing.assert_close(out["soft_label"], smooth(batch["label"], 4, 0.1))
    lams = [Mixup(num_classes=4, switch_prob=0.5)(batch, rng(seed))["mix_lambda"].item() for seed in range(40)]
    assert len(set(lams)) > 20  # both Mixup and CutMix draws happen; each lam in [0, 1]
    assert all(0 <= lam <= 1 for lam in lams)
    torch.testing.assert_close(Mixup(num_classes=4)(batch, torch.Generator().manual_seed(1))["video"],
                               Mixup(num_classes=4)(batch, torch.Generator().manual_seed(1))["video"])
    with pytest.raises(ValueError, match="class id"):
        Mixup(num_classes=4)({**batch, "label": torch.tensor([0, -1, 2, 3, 1])}, rng())
    with pytest.raises(ValueError, match="float"):
        Mixup(num_classes=4)({**batch, "video": (batch["video"] * 255).to(torch.uint8)}, rng())
    with pytest.raises(ValueError, match="alpha"):
        Mixup(alpha=0.0, cutmix_alpha=0.0, num_classes=4)
