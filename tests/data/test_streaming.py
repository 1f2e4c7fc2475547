import json

import pytest

from mmmae.config import parse_config
from mmmae.data.clip_sampling import DenseSampling
from mmmae.data.layouts import class_folder
from mmmae.data.shards import stream_shards, write_shards
from mmmae.data.streaming import StreamingMediaDataset
from mmmae.data.synthetic_media import write_demo_media
from mmmae.train import pretrain
from tests.test_train import MICRO_OVERRIDES


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """A demo tree (8 train clips, one of them truncated) and its shards, 3 clips per shard."""
    root = write_demo_media(tmp_path_factory.mktemp("media"), train_clips=8, test_clips=4)
    broken = sorted((root / "train").glob("*/*.mp4"))[3]
    broken.write_bytes(broken.read_bytes()[:1500])
    shards = write_shards(class_folder(root / "train", audio_in_video=True), root / "shards", 3)
    return root, shards


def stream(shards, frames=4, stride=2, **kwargs) -> StreamingMediaDataset:
    return StreamingMediaDataset(lambda: stream_shards(shards), samples_per_epoch=7, modalities=("video", "audio"),
                                 sampling=DenseSampling(frames=frames, stride=stride), **kwargs)


def test_a_pass_yields_every_readable_row_once_and_counts_the_unreadable(media, caplog):
    _, shards = media
    assert len(shards) == 3
    with caplog.at_level("WARNING"):
        samples = list(stream(shards, train=False))
    assert f"{shards[1]}#000000003" in caplog.text  # the truncated clip, row 3: named by shard and key
    assert len(samples) == 7 and sum(int(s["bad_samples"]) for s in samples) == 1
    assert samples[0]["video"].shape == (3, 4, 16, 16) and samples[0]["audio"].shape == (14000,)
    labels = sorted(int(s["label"]) for s in samples)
    assert len(labels) == 7 and all(0 <= label < 10 for label in labels)


def test_each_pass_is_a_new_shuffle(media):
    _, shards = media
    data = stream(shards, frames=16, stride=1, shuffle_buffer=8)  # the whole clip: its audio identifies the row
    first, second = ([float(s["audio"].abs().sum()) for s in data] for _ in range(2))
    assert sorted(first) == pytest.approx(sorted(second), rel=1e-6) and first != second
    data.set_epoch(0)
    assert [float(s["audio"].abs().sum()) for s in data] == pytest.approx(first, rel=1e-6)  # epoch 0's order again


def test_pretrain_streams_shards_with_loader_workers(media, tmp_path):
    root, _ = media
    bindings = [f"MEDIA_TRAIN = '{root / 'train'}'", f"MEDIA_TEST = '{root / 'test'}'",
                f"MEDIA_SHARDS = '{root / 'shards'}'", "SHARD_SAMPLES = 7", "FRAMES = 8", "STRIDE = 1",
                "FRAME_SIZE = 16", "pretrain.num_workers = 2", "pretrain.steps = 3", "pretrain.log_every = 1"]
    parse_config(["recipes/quickstart_media.gin", "data/media_shards.gin", str(MICRO_OVERRIDES)], bindings)
    pretrain(output_dir=str(tmp_path / "run"))
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3]
