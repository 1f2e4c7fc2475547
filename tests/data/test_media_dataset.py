import json
import logging

import numpy as np
import pytest
import torch

from mmmae.data.clip_sampling import DenseSampling
from mmmae.data.layouts import class_folder, manifest
from mmmae.data.media_dataset import MediaDataset
from mmmae.data.media_errors import MediaError
from mmmae.data.moving_digits import MovingDigits
from mmmae.data.render_imu import DEFAULT_IMU_RATES
from mmmae.data.synthetic_media import write_moving_digits_folder
from mmmae.data.transforms import HorizontalFlip, VideoTransform

FRAMES, SIZE, CLIPS = 16, 32, 4
ALL = ("video", "audio", "imu", "text")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("media")
    write_moving_digits_folder(root, CLIPS, frames=FRAMES, size=SIZE)
    return root


@pytest.fixture(scope="module")
def source():
    """The MovingDigits samples the files were written from."""
    return MovingDigits(num_samples=CLIPS, frames=FRAMES, size=SIZE, min_speed=0.25, max_speed=0.5, modalities=ALL)


def centred(rows, **kwargs) -> MediaDataset:
    """Every frame of the middle second of each 2 s clip, the same each time."""
    return MediaDataset(rows, modalities=ALL, sampling=DenseSampling(frames=8, stride=1, mode="center"),
                        imu_rates=dict(DEFAULT_IMU_RATES), train=False, **kwargs)


def test_every_modality_is_cut_to_the_clip_span(folder, source):
    data = centred(manifest(folder / "manifest.jsonl"))
    for index in range(CLIPS):
        sample, truth = data[index], source[index]
        first = 4  # the centred 8 of 16 frames at 8 fps: frames 4..11, span [0.5, 1.5) s
        assert sample["video"].shape == (3, 8, SIZE, SIZE)
        assert (sample["video"] - truth["video"][:, first:first + 8]).abs().mean() < 0.02  # H.264 at crf 18
        audio = truth["audio"][8000:24000]
        assert sample["audio"].shape == (16000,)
        assert np.corrcoef(sample["audio"].numpy(), audio.numpy())[0, 1] > 0.9  # AAC is lossy, not shifted
        for name, rate in DEFAULT_IMU_RATES.items():
            start = int(rate * 0.5)
            expected = truth["imu"][name][start:start + int(rate)]
            torch.testing.assert_close(sample["imu"][name], expected, atol=1e-6, rtol=1e-5)  # the CSV keeps 9 digits
        assert sample["caption"] == truth["caption"] and sample["text_present"]
        assert data.rows.features["label"].names[int(sample["label"])] == sample["caption"].split()[1]


def test_class_folder_rows_read_the_same_clips(folder):
    by_folder, by_manifest = centred(class_folder(folder)), centred(manifest(folder / "manifest.jsonl"))
    videos = sorted(by_folder.rows["video"])
    assert videos == sorted(by_manifest.rows["video"])
    index = by_folder.rows["video"].index(videos[0])
    other = by_manifest.rows["video"].index(videos[0])
    assert torch.equal(by_folder[index]["video"], by_manifest[other]["video"])


def test_an_absent_modality_is_zeros_and_flagged(folder, tmp_path):
    rows = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]
    rows[0].pop("imu")
    rows[1].pop("caption")
    path = tmp_path / "manifest.jsonl"
    path.write_text("".join(json.dumps({**r, "video": str(folder / r["video"]), "audio": str(folder / r["audio"]),
                                        **({"imu": str(folder / r["imu"])} if "imu" in r else {})}) + "\n"
                            for r in rows))
    data = centred(manifest(path))
    first, second = data[0], data[1]
    assert not first["imu_present"] and all(v.abs().sum() == 0 for v in first["imu"].values())
    assert first["imu"]["center"].shape == (64, 6) and first["text_present"]
    assert not second["text_present"] and second["caption"] == "" and second["imu_present"]


def bad_manifest(folder, tmp_path):
    """Rows: a missing file, a truncated mp4, then the good clips."""
    truncated = tmp_path / "truncated.mp4"
    good = sorted(folder.glob("*/*.mp4"))[0]
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    rows = [{"video": str(tmp_path / "missing.mp4")}, {"video": str(truncated)}]
    rows += [{"video": str(path)} for path in sorted(folder.glob("*/*.mp4"))]
    path = tmp_path / "manifest.csv"
    path.write_text("video\n" + "".join(f"{row['video']}\n" for row in rows))
    return path


def test_unreadable_samples_are_skipped_counted_and_logged(folder, tmp_path, caplog):
    data = MediaDataset(manifest(bad_manifest(folder, tmp_path)), sampling=DenseSampling(frames=4, stride=2))
    with caplog.at_level(logging.WARNING):
        sample = data[0]
    assert int(sample["bad_samples"]) == 2 and int(sample["index"]) == 2  # the first readable row
    assert "missing.mp4" in caplog.text and "truncated.mp4" in caplog.text
    assert int(data[1]["bad_samples"]) == 1 and int(data[2]["bad_samples"]) == 0


def test_on_error_fail_raises_naming_the_file(folder, tmp_path):
    data = MediaDataset(manifest(bad_manifest(folder, tmp_path)), sampling=DenseSampling(frames=4, stride=2),
                        on_error="fail")
    with pytest.raises(MediaError, match="missing.mp4"):
        data[0]


def test_repeated_clips_are_different_views_of_one_video(folder):
    data = MediaDataset(manifest(folder / "manifest.jsonl"), modalities=("video", "audio"),
                        sampling=DenseSampling(frames=4, stride=2), clips_per_video=3)
    torch.manual_seed(0)
    batch = data.collate([data[0], data[1]])
    # frames k, k + 2, k + 4, k + 6 span 7 frame intervals: 0.875 s of audio
    assert batch["video"].shape == (6, 3, 4, SIZE, SIZE) and batch["audio"].shape == (6, 14000)
    assert batch["index"].tolist() == [0, 0, 0, 1, 1, 1]
    first, second, third = batch["video"][:3]
    assert not torch.equal(first, second) or not torch.equal(second, third)


def test_a_flip_mirrors_the_named_imu_channels(folder):
    rows = manifest(folder / "manifest.jsonl")
    kwargs = dict(modalities=("video", "imu"), sampling=DenseSampling(frames=8, stride=1, mode="center"),
                  imu_rates=dict(DEFAULT_IMU_RATES), train=False)
    plain = MediaDataset(rows, **kwargs)[0]
    flipped = MediaDataset(rows, transform=VideoTransform([HorizontalFlip(p=1.0)]), mirror_channels=[0, 4, 5],
                           **kwargs)[0]
    assert torch.equal(flipped["video"], plain["video"].flip(-1))
    sign = torch.tensor([-1.0, 1, 1, 1, -1, -1])
    assert torch.equal(flipped["imu"]["center"], plain["imu"]["center"] * sign)


def test_bad_settings_name_the_binding():
    with pytest.raises(ValueError, match="MediaDataset.on_error"):
        MediaDataset([], on_error="ignore")
    with pytest.raises(ValueError, match="MediaDataset.imu_rates"):
        MediaDataset([], modalities=("video", "imu"))
