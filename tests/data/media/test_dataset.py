import json
import logging

import datasets
import numpy as np
import pytest
import torch

from mmmae.data.media.clip_sampling import DenseSampling
from mmmae.data.media.dataset import MediaDataset
from mmmae.data.media.errors import MediaError
from mmmae.data.media.imu_reader import read_imu_log, resample_imu
from mmmae.data.media.layouts import class_folder, manifest
from mmmae.data.media.synthetic import write_moving_digits_folder, write_mp4
from mmmae.data.moving_digits.dataset import MovingDigits
from mmmae.data.moving_digits.modalities.imu import DEFAULT_IMU_RATES
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


def test_evaluation_leaves_unreadable_rows_out_and_counts_them(folder, tmp_path, caplog):
    data = MediaDataset(manifest(bad_manifest(folder, tmp_path)), sampling=DenseSampling(frames=4, stride=2),
                        train=False)
    with caplog.at_level(logging.WARNING):
        samples = [data[index] for index in range(len(data))]
    assert samples[0] is None and samples[1] is None
    assert "missing.mp4" in caplog.text and "truncated.mp4" in caplog.text
    batch = data.collate(samples[:3])
    assert batch["index"].tolist() == [2] and int(batch["left_out"]) == 2 and batch["left_out"].dtype == torch.int64
    assert set(data.collate(samples[:2])) == {"left_out"} and int(data.collate(samples[:2])["left_out"]) == 2
    batches = [data.collate(samples[i:i + 2]) for i in range(0, len(samples), 2)]
    seen = [i for b in batches for i in b.get("index", torch.zeros(0)).tolist()]
    assert seen == list(range(2, len(data))) and sum(int(b["left_out"]) for b in batches) == 2  # no duplicates


def test_training_counts_each_unreadable_row_once_and_gives_no_row_more_weight(folder, tmp_path, caplog):
    """29 unreadable rows among 16 readable ones, batches of 8: each epoch counts 29, and the
    rows standing in for them are drawn uniformly (the next readable row used to take them all)."""
    good = sorted(folder.glob("*/*.mp4"))
    rows = [{"video": str(tmp_path / f"missing_{i}.mp4")} for i in range(29)]
    rows += [{"video": str(good[i % len(good)])} for i in range(16)]
    path = tmp_path / "manifest.csv"
    path.write_text("video\n" + "".join(f"{row['video']}\n" for row in rows))
    data = MediaDataset(manifest(path), sampling=DenseSampling(frames=2, stride=1))
    loader = torch.utils.data.DataLoader(data, batch_size=8, shuffle=True, collate_fn=data.collate,
                                         generator=torch.Generator().manual_seed(0))
    epochs, counts = 8, np.zeros(len(rows), np.int64)
    for epoch in range(epochs):
        data.set_epoch(epoch)
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            batches = list(loader)
        assert sum(int(batch["bad_samples"].sum()) for batch in batches) == 29
        assert caplog.text.count("missing_") == 29  # each unreadable row logged once, drawn-over ones not again
        np.add.at(counts, torch.cat([batch["index"] for batch in batches]).numpy(), 1)
    assert counts[:29].sum() == 0
    # each readable row: once an epoch, plus its share of 29 uniform draws among 16 (binomial)
    draws, p = 29 * epochs, 1 / 16
    mean, sd = epochs + draws * p, np.sqrt(draws * p * (1 - p))
    assert np.abs(counts[29:] - mean).max() < 5 * sd, counts[29:]


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
    with pytest.raises(ValueError, match="MediaDataset.seed"):
        MediaDataset([], seed=-1)
    with pytest.raises(ValueError, match="MediaDataset.imu_rates"):
        MediaDataset([], modalities=("video", "imu"))


def test_a_clip_without_an_audio_track_keeps_its_audio_absent(folder, tmp_path):
    silent = tmp_path / "silent" / "one" / "clip.mp4"
    silent.parent.mkdir(parents=True)
    write_mp4(silent, MovingDigits(num_samples=1, frames=FRAMES, size=SIZE)[0]["video"].numpy(), 8)
    kwargs = dict(modalities=("video", "audio"), sampling=DenseSampling(frames=4, stride=2), train=False)
    sample = MediaDataset(class_folder(silent.parents[1], audio_in_video=True), **kwargs)[0]
    assert not sample["audio_present"] and sample["audio"].shape == (14000,) and not sample["audio"].any()
    separate = MediaDataset(table([{"video": str(sorted(folder.glob("*/*.mp4"))[0]), "audio": str(silent)}]), **kwargs)
    with pytest.raises(MediaError, match="clip.mp4"):  # a separate audio file without audio stays an error
        separate.read(separate.rows[0], 0)


def table(rows):
    return datasets.Dataset.from_list(rows)


def write_fps_folder(root, fps):
    """Two clips of 16 frames at ``fps`` (audio in the mp4, an IMU CSV each)."""
    write_moving_digits_folder(root, 2, frames=FRAMES, size=SIZE, fps=fps)
    return [str(path) for path in sorted(root.glob("*/*.mp4"))]


def test_a_clip_of_another_frame_rate_is_an_error_naming_the_file_and_the_fix(tmp_path):
    rows = [{"video": v, "audio": v, "imu": v[:-4] + ".csv"} for v in write_fps_folder(tmp_path / "at8", 8)]
    odd = write_fps_folder(tmp_path / "at32", 32)[0]
    rows.append({"video": odd, "audio": odd, "imu": odd[:-4] + ".csv"})
    kwargs = dict(modalities=("video", "audio", "imu"), sampling=DenseSampling(frames=4, stride=2, mode="center"),
                  imu_rates=dict(DEFAULT_IMU_RATES))
    rows = table(rows)
    data = MediaDataset(rows, **kwargs)
    data.read(rows[1], 1)
    with pytest.raises(MediaError, match=r"audio has shape \(3500,\), the dataset's samples \(14000,\)") as error:
        data.read(rows[2], 2)
    assert error.value.path == odd and "MediaDataset.span_seconds" in error.value.reason
    fixed = MediaDataset(rows, span_seconds=0.25, **kwargs)
    samples = [fixed.read(row, index)[0] for index, row in enumerate(rows)]
    assert fixed.collate(samples)["audio"].shape == (3, 4000)


def test_a_clip_of_another_frame_size_is_an_error_naming_the_file(folder, tmp_path):
    small = tmp_path / "small.mp4"
    write_mp4(small, MovingDigits(num_samples=1, frames=FRAMES, size=16)[0]["video"].numpy(), 8)
    rows = table([{"video": str(sorted(folder.glob("*/*.mp4"))[0])}, {"video": str(small)}])
    data = MediaDataset(rows, sampling=DenseSampling(frames=4, stride=2))
    with pytest.raises(MediaError, match="crop") as error:
        data.read(rows[1], 1)
    assert error.value.path == str(small)


def imu_rows(folder):
    return table([{"imu": str(path)} for path in sorted(folder.glob("*/*.csv"))])


def test_imu_only_clips_start_at_random_in_training_and_centred_in_evaluation(folder):
    kwargs = dict(modalities=("imu",), span_seconds=0.5, imu_rates=dict(DEFAULT_IMU_RATES))
    train, test = MediaDataset(imu_rows(folder), **kwargs), MediaDataset(imu_rows(folder), train=False, **kwargs)
    log = read_imu_log(train.rows[0]["imu"])
    end = min(times[-1] for times, _ in log.values())  # every device's log starts at 0
    centred = resample_imu(log, (end - 0.5) / 2, (end + 0.5) / 2, DEFAULT_IMU_RATES)
    for _ in range(2):
        assert all(torch.equal(test[0]["imu"][name], centred[name]) for name in DEFAULT_IMU_RATES)
    crops = set()
    for epoch in range(6):  # any crop must lie inside the log: resample_imu raises otherwise
        train.set_epoch(epoch)
        crops.add(tuple(train[0]["imu"]["center"][:, 0].tolist()))
    assert len(crops) > 1  # a new crop each epoch


def test_training_clips_follow_seed_epoch_and_index_not_the_global_rng(folder):
    def dataset():
        return MediaDataset(manifest(folder / "manifest.jsonl"), sampling=DenseSampling(frames=4, stride=2),
                            transform=VideoTransform([HorizontalFlip()]))

    first, second = dataset(), dataset()
    torch.manual_seed(0)
    clip = first[1]["video"]
    torch.manual_seed(1)
    assert torch.equal(second[1]["video"], clip)  # the same (seed, epoch, index): the same clip
    clips = set()
    for epoch in range(4):
        first.set_epoch(epoch)
        clips.add(tuple(first[1]["video"].mean(dim=(0, 2, 3)).tolist()))
    assert len(clips) > 1  # each epoch a new clip of the video
    loader = torch.utils.data.DataLoader(first, batch_size=2, num_workers=1, persistent_workers=True,
                                         collate_fn=first.collate)
    for epoch in (5, 6):  # the persistent worker sees every set_epoch
        first.set_epoch(epoch)
        batch = next(iter(loader))
        assert torch.equal(batch["video"], torch.stack([first[0]["video"], first[1]["video"]]))


def test_audio_channels_pick_channels_of_a_surround_track(folder, tmp_path):
    from tests.data.media.test_audio_reader import SURROUND, peak_hz, write_surround

    write_surround(tmp_path / "surround.wav", "pcm_f32le", "5.1(side)", seconds=3.0)
    video = str(sorted(folder.glob("*/*.mp4"))[0])
    rows = table([{"video": video, "audio": str(tmp_path / "surround.wav")}])
    kwargs = dict(modalities=("video", "audio"), sampling=DenseSampling(frames=4, stride=2, mode="center"), train=False)
    lfe = MediaDataset(rows, audio_channels=["LFE"], **kwargs)[0]["audio"].numpy()
    downmix = MediaDataset(rows, **kwargs)[0]["audio"].numpy()
    assert peak_hz(lfe) == pytest.approx(50.0, abs=1.0)  # the LFE rumble alone
    assert np.abs(lfe).max() == pytest.approx(SURROUND[3], rel=1e-3)
    assert peak_hz(downmix) != pytest.approx(50.0, abs=1.0)  # the downmix leaves the LFE out
