"""`mmmae validate`: every row read through MediaDataset.read, every problem reported, never a crash."""

import json
import shutil
import subprocess
import sys

import av
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mmmae.cli import main
from mmmae.data.media.synthetic import write_moving_digits_folder, write_mp4
from mmmae.data.media.validation_report import check_dataset, check_datasets, format_report, source_datasets
from mmmae.data.moving_digits.dataset import MovingDigits

BROKEN = "zz_broken"  # a class folder that sorts after the digit words: its clips are the last rows


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    write_moving_digits_folder(root, 4, frames=16, size=16)
    return root


def good_rows(folder) -> list[dict]:
    rows = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]
    return [{k: str(folder / v) if k in ("video", "audio", "imu") else v for k, v in r.items()} for r in rows]


def write_audio_only(path):
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 16000), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 16000, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode())


def without_times(log, start: float, end: float):
    """An IMU CSV's text with every sample in (start, end) seconds left out (a gap in every device)."""
    table = pd.read_csv(log)
    return table[(table["timestamp"] <= start) | (table["timestamp"] >= end)].to_csv(index=False)


def broken_manifest(folder, tmp_path):
    """Rows 0-3 the good clips; 4 a truncated mp4; 5 a missing file; 6 no video stream; 7 an IMU log with a gap."""
    rows = good_rows(folder)
    good = rows[0]
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes((folder / rows[0]["video"]).read_bytes()[:2000])
    write_audio_only(tmp_path / "sound.mp4")
    gap = tmp_path / "gap.csv"
    gap.write_text(without_times(rows[1]["imu"], 0.5, 1.0))
    rows += [{"video": str(truncated)}, {"video": str(tmp_path / "missing.mp4")},
             {"video": str(tmp_path / "sound.mp4")}, {"video": good["video"], "imu": str(gap)}]
    path = tmp_path / "manifest.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_every_bad_file_is_reported_with_row_column_and_reason(folder, tmp_path):
    [report] = check_datasets(source_datasets(broken_manifest(folder, tmp_path)))
    assert report["rows"] == 8
    found = {(p["row"], p["column"]) for p in report["problems"]}
    assert found == {(4, "video"), (5, "video"), (6, "video"), (7, "imu")}
    by_row = {p["row"]: p for p in report["problems"]}
    assert by_row[5]["path"].endswith("missing.mp4") and by_row[4]["path"].endswith("truncated.mp4")
    assert "video stream" in by_row[6]["reason"] and "gap" in by_row[7]["reason"]
    text = format_report([report])
    assert "8 rows, 4 readable, 4 with problems" in text and text.count("\n") == 4


def test_a_required_imu_device_must_be_in_every_log(folder):
    [report] = check_datasets(source_datasets(folder, imu_devices=["center", "ankle"]))
    assert report["rows"] == 4 and len(report["problems"]) == 4
    assert all("'ankle'" in p["reason"] and p["column"] == "imu" for p in report["problems"])


def test_an_unexpected_error_is_reported_with_the_rows_paths_and_the_rest_still_checked(folder, monkeypatch):
    [(name, dataset, _)] = source_datasets(folder)
    read = dataset.read

    def flaky(row, index, *args):
        if index == 1:
            raise RuntimeError("decoder state lost")
        return read(row, index, *args)

    monkeypatch.setattr(dataset, "read", flaky)
    report = check_dataset(dataset, name)
    assert report["rows"] == 4
    [problem] = report["problems"]
    assert problem["row"] == 1 and problem["reason"] == "unexpected error: RuntimeError: decoder state lost"
    assert dataset.rows[1]["video"] in problem["path"] and dataset.rows[1]["imu"] in problem["path"]


def broken_folder(folder, root):
    """The good clips of ``folder`` and, under root/zz_broken (the last rows), one clip per kind:
    {kind: the file a report must name}."""
    shutil.copytree(folder, root)
    rows, broken = good_rows(folder), root / BROKEN
    broken.mkdir()
    sample = MovingDigits(num_samples=1, frames=16, size=16, fps=30, modalities=("video", "audio"))[0]
    write_mp4(broken / "fps30.mp4", sample["video"].numpy(), 30, sample["audio"].numpy())
    write_mp4(broken / "one_frame.mp4", sample["video"].numpy()[:, :1], 8, sample["audio"].numpy()[:2000])
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(broken / "image.png")
    (broken / "image.png").rename(broken / "png.mp4")
    for name in ("imu3", "gap", "latin1", "folder_caption"):
        shutil.copy(rows[0]["video"], broken / f"{name}.mp4")
    table = pd.read_csv(rows[0]["imu"])
    table[["timestamp", "device", "ax", "ay", "az"]].to_csv(broken / "imu3.csv", index=False)
    (broken / "gap.csv").write_text(without_times(rows[0]["imu"], 0.8, 1.2))
    (broken / "latin1.txt").write_bytes("un caf\xe9 bouge".encode("latin-1"))
    (broken / "folder_caption.txt").mkdir()
    return {kind: str(broken / name) for kind, name in [
        ("fps30", "fps30.mp4"), ("one_frame", "one_frame.mp4"), ("png", "png.mp4"), ("imu3", "imu3.csv"),
        ("gap", "gap.csv"), ("latin1", "latin1.txt"), ("folder_caption", "folder_caption.txt")]}


@pytest.fixture(scope="module")
def broken(folder, tmp_path_factory):
    root = tmp_path_factory.mktemp("broken") / "train"
    return root, broken_folder(folder, root)


def test_folder_form_reports_every_broken_clip_and_never_crashes(broken):
    root, named = broken
    [report] = check_datasets(source_datasets(root, audio_in_video=True))
    assert report["rows"] == 4 + 7
    by_path = {p["path"]: p for p in report["problems"]}
    assert set(by_path) == set(named.values())
    assert not any(p["reason"].startswith("unexpected error") for p in report["problems"])
    assert "frame rate" in by_path[named["fps30"]]["reason"] and "span_seconds" in by_path[named["fps30"]]["reason"]
    assert "imu_channels" in by_path[named["imu3"]]["reason"] and by_path[named["imu3"]]["column"] == "imu"
    assert "gap" in by_path[named["gap"]]["reason"]
    assert "not UTF-8" in by_path[named["latin1"]]["reason"] and by_path[named["latin1"]]["column"] == "caption"
    assert "directory" in by_path[named["folder_caption"]]["reason"].lower()


def test_streamed_rows_are_reported_by_their_shard_member(broken, tmp_path):
    from mmmae.data.media.clip_sampling import DenseSampling
    from mmmae.data.media.layouts import class_folder
    from mmmae.data.media.shards import stream_shards, write_shards
    from mmmae.data.media.streaming import StreamingMediaDataset

    root, named = broken
    write_shards(class_folder(root, audio_in_video=True), tmp_path, 4)
    stream = StreamingMediaDataset(stream_shards(str(tmp_path)), samples_per_epoch=11, modalities=["video", "audio"],
                                   sampling=DenseSampling(frames=4, stride=1, mode="center"), train=False)
    report = check_dataset(stream, "stream")
    assert report["rows"] == 11
    by_row = {p["row"]: p for p in report["problems"]}
    assert set(by_row) == {5, 9, 10}  # 30 fps, one frame, a PNG: the IMU and caption kinds are not read here
    assert by_row[10]["path"] == f"{tmp_path / 'shard-000002.tar'}#000000010" and by_row[10]["column"] == "row"
    assert "png" in by_row[10]["reason"]


def test_cli_exit_status_and_json_report(folder, tmp_path, capsys):
    with pytest.raises(SystemExit) as clean:
        main(["validate", str(folder), "--audio_in_video"])
    assert clean.value.code == 0 and "4 rows, 4 readable, 0 with problems" in capsys.readouterr().out
    report = tmp_path / "report.json"
    with pytest.raises(SystemExit) as bad:
        main(["validate", str(broken_manifest(folder, tmp_path)), "--report", str(report)])
    assert bad.value.code == 1 and "row 5 video" in capsys.readouterr().out
    assert len(json.loads(report.read_text())[0]["problems"]) == 4


@pytest.mark.parametrize(("text", "says"), [
    ('{"video": "a.mp4", "label": "cat"}\n{"video": "b.mp4", "label": [1, 2]}\n',
     "manifest.jsonl:2: label [1, 2] is not one class"),
    ('{"video": "a.mp4", "caption": "caf\xe9"}\n'.encode("latin-1"), "manifest.jsonl:1: not UTF-8 text"),
    ('{"video": "a.mp4"}\n{"video": "b.mp4", "fps": 30}\n', "manifest.jsonl:2: unknown column(s) ['fps']"),
], ids=["label_list", "not_utf8", "unknown_column"])
def test_a_bad_manifest_is_one_message_naming_file_and_line(tmp_path, text, says):
    path = tmp_path / "manifest.jsonl"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    done = subprocess.run([sys.executable, "-m", "mmmae", "validate", str(path)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 1 and says in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and str(path) in done.stderr


def test_source_or_recipe_not_both(folder, capsys):
    with pytest.raises(SystemExit) as both:
        main(["validate", str(folder), "--gin_file", "recipes/quickstart_media.gin"])
    assert "either SOURCE" in str(both.value.code)
    with pytest.raises(SystemExit) as neither:
        main(["validate"])
    assert "either SOURCE" in str(neither.value.code)
