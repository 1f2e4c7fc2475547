"""Tests for webdataset shards: real media written, packed, streamed back byte for byte."""

import io
import json
import socket
import tarfile
import wave

import av
import gin
import numpy as np
import pytest

from mmmae.data.media.layouts import COLUMNS, manifest
from mmmae.data.media.shards import SHARD_FEATURES, shard_paths, stream_shards, write_shards


def write_mp4(path, frames: int = 4, size: int = 16, sample_rate: int = 16000):
    """A tiny real mp4: H.264 video of random frames and a 440 Hz AAC track."""
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=8)
        video.width = video.height = size
        video.pix_fmt = "yuv420p"
        audio = container.add_stream("aac", rate=sample_rate, layout="mono")
        for _ in range(frames):
            image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            container.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(video.encode())
        tone = np.sin(2 * np.pi * 440 * np.arange(sample_rate // 2) / sample_rate).astype(np.float32)[None]
        frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
        frame.sample_rate = sample_rate
        container.mux(audio.encode(frame))
        container.mux(audio.encode())


def write_wav(path, seconds: float = 0.25, sample_rate: int = 16000):
    samples = (np.random.default_rng(1).normal(0, 3000, int(seconds * sample_rate))).astype(np.int16)
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(sample_rate)
        f.writeframes(samples.tobytes())


@pytest.fixture
def clips(tmp_path):
    """A manifest over real files: mp4 with audio, wav, IMU csv and npz; one row's file is missing."""
    root = tmp_path / "clips"
    root.mkdir()
    write_mp4(root / "a.mp4")
    write_mp4(root / "b.mp4", frames=6)
    write_wav(root / "b.wav")
    (root / "a.csv").write_text("timestamp,device,ax,ay,az\n0.0,wrist,0.1,0.2,9.8\n0.01,wrist,0.1,0.3,9.7\n")
    np.savez(root / "b.npz", wrist=np.random.default_rng(2).normal(size=(50, 4)))
    rows = [
        {"video": "a.mp4", "audio": "a.mp4", "imu": "a.csv", "caption": "a digit moves up", "label": "up"},
        {"video": "b.mp4", "audio": "b.wav", "imu": "b.npz", "label": "down", "start": 0.25, "end": 0.5},
        {"video": "gone.mp4", "label": "up"},
        {"imu": "b.npz"},
        {"audio": "b.wav", "caption": "noise", "label": "down"},
    ]
    path = root / "manifest.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest(path)


def test_write_then_stream_is_byte_identical(clips, tmp_path):
    shards = write_shards(clips, tmp_path / "shards", max_samples_per_shard=2)
    assert [p.name for p in shards] == ["shard-000000.tar", "shard-000001.tar"]  # 4 rows kept, the missing one skipped
    streamed = stream_shards(tmp_path / "shards")
    assert streamed.n_shards == 2
    assert streamed.features == SHARD_FEATURES
    rows = list(streamed)
    expected = [row for row in clips if row["video"] is None or not row["video"].endswith("gone.mp4")]
    assert len(rows) == len(expected) == 4
    for got, want in zip(rows, expected):
        assert list(got) == [*COLUMNS, "shard_member"]
        for column in ("video", "audio", "imu"):
            if want[column] is None:
                assert got[column] is None
            else:
                with open(want[column], "rb") as f:
                    assert got[column] == f.read(), column
        assert {k: got[k] for k in ("caption", "label", "start", "end")} == {
            k: want[k] for k in ("caption", "label", "start", "end")}
    assert rows[0]["audio"] == rows[0]["video"]
    assert rows[0]["shard_member"] == f"{shards[0]}#000000000"
    with av.open(io.BytesIO(rows[1]["video"])) as container:  # the bytes are a playable mp4
        assert sum(1 for _ in container.decode(video=0)) == 6
    with np.load(io.BytesIO(rows[2]["imu"])) as npz:
        assert npz["wrist"].shape == (50, 4)


def test_shard_members_are_webdataset_samples(clips, tmp_path):
    shards = write_shards(clips, tmp_path / "shards", max_samples_per_shard=3)
    with tarfile.open(shards[0]) as tar:
        names = tar.getnames()
        meta = json.load(tar.extractfile("000000001.json"))
    assert names == ["000000000.mp4", "000000000.csv", "000000000.json",  # the mp4 stored once for video and audio
                     "000000001.mp4", "000000001.wav", "000000001.npz.bin", "000000001.json",
                     "000000003.npz.bin", "000000003.json"]
    assert meta == {"label": 0, "caption": None, "start": 0.25, "end": 0.5,
                    "files": {"video": "mp4", "audio": "wav", "imu": "npz.bin"}}
    with tarfile.open(shards[1]) as tar:
        assert tar.getnames() == ["000000004.wav", "000000004.json"]


def test_stream_shards_paths_patterns_and_no_network(clips, tmp_path, monkeypatch):
    folder = tmp_path / "odd [name]"  # brackets: glob characters in a real path
    shards = write_shards(clips, folder, max_samples_per_shard=2)
    connections = []

    def no_network(self, address):
        connections.append(address)
        raise OSError("network is off in this test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    assert len(list(stream_shards(folder))) == 4
    assert len(list(stream_shards(shards[1]))) == 2
    assert len(list(stream_shards([str(s) for s in shards]))) == 4
    assert shard_paths(str(tmp_path / "odd [[]name]" / "shard-*.tar")) == [str(s) for s in shards]
    assert connections == []
    with pytest.raises(FileNotFoundError, match="no shards found"):
        stream_shards(tmp_path / "none-*.tar")


def test_write_shards_rejects_unstorable_samples(tmp_path):
    for name in ("a.mp4", "b.mp4", "c.xyz"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "two.jsonl").write_text('{"video": "a.mp4", "audio": "b.mp4"}\n')
    with pytest.raises(ValueError, match="two different .mp4 files in one sample"):
        write_shards(manifest(tmp_path / "two.jsonl"), tmp_path / "out")
    (tmp_path / "odd.jsonl").write_text('{"video": "c.xyz"}\n')
    with pytest.raises(ValueError, match=r"c\.xyz: a shard cannot hold \.xyz files"):
        write_shards(manifest(tmp_path / "odd.jsonl"), tmp_path / "out")


def test_stream_shards_is_gin_configurable(clips, tmp_path):
    write_shards(clips, tmp_path / "shards")
    gin.parse_config(f"stream_shards.pattern_or_paths = '{tmp_path / 'shards' / 'shard-*.tar'}'")
    assert [row["caption"] for row in stream_shards()] == ["a digit moves up", None, None, "noise"]


def test_npy_logs_come_back_byte_identical(tmp_path):
    np.save(tmp_path / "c.npy", np.random.default_rng(3).normal(size=(20, 4)))
    (tmp_path / "m.jsonl").write_text(json.dumps({"imu": "c.npy", "label": 1}) + "\n")
    write_shards(manifest(tmp_path / "m.jsonl"), tmp_path / "shards")
    (row,) = list(stream_shards(tmp_path / "shards"))
    assert row["imu"] == (tmp_path / "c.npy").read_bytes()
