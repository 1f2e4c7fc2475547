"""Shards streamed from remote storage (fsspec URLs), served here by a local HTTP server: no network."""

import functools
import http.server
import threading

import pytest

from mmmae.data.media.clip_sampling import DenseSampling
from mmmae.data.media.layouts import class_folder
from mmmae.data.media.shards import expand_ranges, shard_paths, stream_shards, write_shards
from mmmae.data.media.streaming import StreamingMediaDataset
from mmmae.data.media.synthetic import write_demo_media


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # no request lines in the test output
        pass


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """4 demo clips in 2 shards of 2, and the URL of the folder holding them on a local HTTP server."""
    root = write_demo_media(tmp_path_factory.mktemp("media"), train_clips=4, test_clips=1)
    shards = write_shards(class_folder(root / "train", audio_in_video=True), root / "shards", 2)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(QuietHandler, directory=str(root / "shards")))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield shards, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


def test_ranges_expand_as_webdataset_writes_them():
    assert expand_ranges("s3://b/shard-{000008..000010}.tar") == [
        "s3://b/shard-000008.tar", "s3://b/shard-000009.tar", "s3://b/shard-000010.tar"]
    assert shard_paths("https://host/data/shard-{0..1}.tar") == ["https://host/data/shard-0.tar",
                                                                   "https://host/data/shard-1.tar"]
    with pytest.raises(ValueError, match=r"the range \{3..1\} counts down; write it as \{1..3\}"):
        expand_ranges("https://host/shard-{3..1}.tar")


def test_shards_over_http_stream_the_same_rows_as_the_local_files(served):
    shards, url = served
    remote = list(stream_shards(f"{url}/shard-{{000000..000001}}.tar"))
    local = list(stream_shards(shards))
    assert len(remote) == len(local) == 4
    assert [r["shard_member"] for r in remote] == [f"{url}/{s.name}#{k:09d}" for s, k in
                                                   zip([shards[0]] * 2 + [shards[1]] * 2, range(4))]
    without_member = [{k: v for k, v in row.items() if k != "shard_member"} for row in remote]
    assert without_member == [{k: v for k, v in row.items() if k != "shard_member"} for row in local]


def test_a_streaming_dataset_decodes_clips_from_http_shards(served):
    _, url = served
    data = StreamingMediaDataset(lambda: stream_shards(f"{url}/shard-{{000000..000001}}.tar"), samples_per_epoch=4,
                                 modalities=("video", "audio"), sampling=DenseSampling(frames=4, stride=2),
                                 train=False)
    batch = data.collate(list(data))
    assert batch["video"].shape == (4, 3, 4, 16, 16) and int(batch["left_out"]) == 0
