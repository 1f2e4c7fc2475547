import json
import subprocess
import sys

import av
import numpy as np
import pytest

from mmmae.data.media_check import check_source, format_report
from mmmae.data.synthetic_media import write_moving_digits_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    write_moving_digits_folder(root, 4, frames=16, size=16)
    return root


def write_audio_only(path):
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 16000), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 16000, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode())


def broken_manifest(folder, tmp_path):
    """Rows 0-3 the good clips; 4 a truncated mp4; 5 a missing file; 6 no video stream; 7 an IMU log with a gap."""
    rows = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]
    rows = [{k: str(folder / v) if k in ("video", "audio", "imu") else v for k, v in r.items()} for r in rows]
    good = rows[0]
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes((folder / rows[0]["video"]).read_bytes()[:2000])
    write_audio_only(tmp_path / "sound.mp4")
    lines = (folder / rows[1]["imu"]).read_text().splitlines()
    gap = tmp_path / "gap.csv"
    gap.write_text("\n".join(lines[:40] + lines[120:]) + "\n")  # about 0.5 s of every device missing
    rows += [{"video": str(truncated)}, {"video": str(tmp_path / "missing.mp4")},
             {"video": str(tmp_path / "sound.mp4")}, {"video": good["video"], "imu": str(gap)}]
    path = tmp_path / "manifest.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_every_bad_file_is_reported_with_row_column_and_reason(folder, tmp_path):
    report = check_source(broken_manifest(folder, tmp_path))
    assert report["rows"] == 8
    found = {(p["row"], p["column"]) for p in report["problems"]}
    assert found == {(4, "video"), (5, "video"), (6, "video"), (7, "imu")}
    by_row = {p["row"]: p for p in report["problems"]}
    assert by_row[5]["path"].endswith("missing.mp4") and by_row[4]["path"].endswith("truncated.mp4")
    assert "video stream" in by_row[6]["reason"] and "gap" in by_row[7]["reason"]
    text = format_report(report)
    assert "8 rows, 4 readable, 4 with problems" in text and text.count("\n") == 4


def test_a_required_imu_device_must_be_in_every_log(folder):
    report = check_source(folder, imu_devices=["center", "ankle"])
    assert report["rows"] == 4 and len(report["problems"]) == 4
    assert all("'ankle'" in p["reason"] and p["column"] == "imu" for p in report["problems"])


def test_cli_exit_status_and_json_report(folder, tmp_path):
    command = [sys.executable, "-m", "mmmae", "validate"]
    clean = subprocess.run([*command, str(folder), "--audio_in_video"], capture_output=True, text=True, timeout=120)
    assert clean.returncode == 0 and "4 rows, 4 readable, 0 with problems" in clean.stdout
    report = tmp_path / "report.json"
    bad = subprocess.run([*command, str(broken_manifest(folder, tmp_path)), "--report", str(report)],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "row 5 video" in bad.stdout
    assert len(json.loads(report.read_text())["problems"]) == 4
