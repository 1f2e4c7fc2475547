import json

import pytest
import torch

from mmmae.config import ConfigError, parse_config
from mmmae.data.media.clip_sampling import DenseSampling
from mmmae.data.media.layouts import class_folder
from mmmae.data.media.shards import stream_shards, write_shards
from mmmae.data.media.streaming import StreamingMediaDataset
from mmmae.data.media.synthetic import write_demo_media
from mmmae.train import pretrain
from tests.interrupt import run_until_interrupted
from tests.test_train import MICRO_OVERRIDES, losses, weights


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """A demo tree (8 train clips, one of them truncated) and its shards, 3 clips per shard."""
    root = write_demo_media(tmp_path_factory.mktemp("media"), train_clips=8, test_clips=4)
    broken = sorted((root / "train").glob("*/*.mp4"))[3]
    broken.write_bytes(broken.read_bytes()[:1500])
    shards = write_shards(class_folder(root / "train", audio_in_video=True), root / "shards", 3)
    return root, shards


def stream(shards, frames=4, stride=2, samples_per_epoch=7, **kwargs) -> StreamingMediaDataset:
    return StreamingMediaDataset(lambda: stream_shards(shards), samples_per_epoch=samples_per_epoch,
                                 modalities=("video", "audio"), sampling=DenseSampling(frames=frames, stride=stride),
                                 **kwargs)


def test_an_evaluation_pass_yields_every_readable_row_once_and_leaves_the_unreadable_out(media, caplog):
    _, shards = media
    assert len(shards) == 3
    data = stream(shards, train=False)
    with caplog.at_level("WARNING"):
        samples = list(data)
    assert f"{shards[1]}#000000003" in caplog.text  # the truncated clip, row 3: named by shard and key
    assert len(samples) == 8 and samples[3] is None
    batch = data.collate(samples)
    assert int(batch["left_out"]) == 1 and batch["video"].shape == (7, 3, 4, 16, 16)
    assert batch["audio"].shape == (7, 14000) and batch["index"].tolist() == [0, 1, 2, 4, 5, 6, 7]


def test_a_training_pass_is_samples_per_epoch_long_and_counts_each_unreadable_row(media):
    _, shards = media
    data = stream(shards, frames=16, stride=1, shuffle_buffer=8)  # the whole clip: its audio identifies the row
    samples = list(data)
    assert len(samples) == 7 and sum(int(s["bad_samples"]) for s in samples) == 1
    assert len({float(s["audio"].abs().sum()) for s in samples}) == 7  # every readable row once
    longer = list(stream(shards, samples_per_epoch=10))  # runs out: reads the stream again, newly shuffled
    assert len(longer) == 10


def test_each_epoch_is_a_new_shuffle_and_the_same_every_time(media):
    _, shards = media
    data = stream(shards, frames=16, stride=1, shuffle_buffer=8)

    def audio_sums(epoch):
        data.set_epoch(epoch)
        return [float(s["audio"].abs().sum()) for s in data]

    first, second = audio_sums(0), audio_sums(1)
    assert sorted(first) == pytest.approx(sorted(second), rel=1e-6) and first != second
    assert audio_sums(0) == first  # bitwise: the same shuffle and clips


def test_pretrain_on_shards_resumes_mid_epoch_bitwise(media, tmp_path, monkeypatch):
    root, _ = media
    bindings = [f"MEDIA_TRAIN = '{root / 'train'}'", f"MEDIA_TEST = '{root / 'test'}'",
                f"MEDIA_SHARDS = '{root / 'shards'}'", "SHARD_SAMPLES = 16", "FRAMES = 8", "STRIDE = 1",
                "FRAME_SIZE = 16", "pretrain.num_workers = 2", "pretrain.steps = 6", "pretrain.save_every = 3",
                "pretrain.log_every = 1"]  # 2 workers x 8 samples = 4 steps an epoch of batch 4

    def shard_train(run_dir, resume=False):
        parse_config(["recipes/quickstart_media.gin", "data/media_shards.gin", str(MICRO_OVERRIDES)], bindings)
        pretrain(output_dir=str(run_dir), resume=resume)

    shard_train(tmp_path / "whole")
    run_until_interrupted(lambda: shard_train(tmp_path / "resumed"), monkeypatch)
    shard_train(tmp_path / "resumed", resume=True)  # from step 3: mid-epoch 0
    expected, resumed = weights(tmp_path / "whole"), weights(tmp_path / "resumed")
    assert all(torch.equal(expected[k], resumed[k]) for k in expected)
    assert losses(tmp_path / "resumed") == losses(tmp_path / "whole")


def shard_bindings(root, samples: int) -> list[str]:
    return [f"MEDIA_TRAIN = '{root / 'train'}'", f"MEDIA_TEST = '{root / 'test'}'",
            f"MEDIA_SHARDS = '{root / 'shards'}'", f"SHARD_SAMPLES = {samples}", "FRAMES = 8", "STRIDE = 1",
            "FRAME_SIZE = 16", "pretrain.num_workers = 2", "pretrain.steps = 3", "pretrain.log_every = 1"]


def test_pretrain_streams_shards_with_loader_workers(media, tmp_path):
    root, _ = media
    parse_config(["recipes/quickstart_media.gin", "data/media_shards.gin", str(MICRO_OVERRIDES)],
                 shard_bindings(root, 8))  # one batch of 4 on each of 2 workers an epoch
    pretrain(output_dir=str(tmp_path / "run"))
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3]


def test_an_epoch_of_partial_batches_is_refused_before_the_run_directory_exists(media, tmp_path):
    root, _ = media
    parse_config(["recipes/quickstart_media.gin", "data/media_shards.gin", str(MICRO_OVERRIDES)],
                 shard_bindings(root, 7))
    with pytest.raises(ConfigError, match=r"StreamingMediaDataset.samples_per_epoch = 7 is not a multiple of "
                       r"batch_size 4 x max\(1, num_workers\) 2 x processes 1 = 8(.|\n)*use 8(.|\n)*media_shards.gin"):
        pretrain(output_dir=str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()
