"""Tests for the IMU log reader on real CSV and NPZ files: several devices at several rates, exact
linear interpolation, and the checks (gaps, NaN, non-monotonic time, missing devices)."""

import numpy as np
import pytest
import torch

from mmmae.data.media.errors import MediaError
from mmmae.data.media.imu_reader import NPY_DEVICE, read_imu_log, resample_imu

CHANNELS = ("ax", "gz")


def devices() -> dict[str, np.ndarray]:
    """Two devices, (N, 1 + C) tables [timestamp, ax, gz]: 'wrist' at 16 Hz from 0 s (ax = k^2, gz = -k at
    t = k / 16, k <= 32) and 'ankle' at 32 Hz from 1/64 s (ax = 3k, gz = (-1)^k at t = 1/64 + k / 32, k <= 62)."""
    k = np.arange(33.0)
    wrist = np.stack([k / 16, k**2, -k], axis=1)
    k = np.arange(63.0)
    ankle = np.stack([1 / 64 + k / 32, 3 * k, (-1.0) ** k], axis=1)
    return {"wrist": wrist, "ankle": ankle}


def csv_lines(tables: dict[str, np.ndarray]) -> list[str]:
    """Long-format CSV lines, header first, the devices' rows interleaved in time order (stable)."""
    rows = [(t, f"{t},{device},{ax},{gz}") for device, table in tables.items() for t, ax, gz in table.tolist()]
    rows.sort(key=lambda row: row[0])
    return ["timestamp,device," + ",".join(CHANNELS)] + [text for _, text in rows]


def write_csv(path, lines: list[str]):
    path.write_text("\n".join(lines) + "\n")
    return path


def line_of(lines: list[str], prefix: str) -> int:
    """1-based line number of the line starting with prefix."""
    return next(number for number, line in enumerate(lines, start=1) if line.startswith(prefix))


@pytest.fixture
def csv_log(tmp_path):
    return write_csv(tmp_path / "imu.csv", csv_lines(devices()))


@pytest.fixture
def npz_log(tmp_path):
    np.savez(tmp_path / "imu.npz", **devices())
    return tmp_path / "imu.npz"


def test_npy_holds_one_device(tmp_path):
    table = devices()["wrist"]
    np.save(tmp_path / "wrist.npy", table)
    for source in (tmp_path / "wrist.npy", (tmp_path / "wrist.npy").read_bytes()):
        log = read_imu_log(source, channels=CHANNELS)
        assert list(log) == [NPY_DEVICE]
        np.testing.assert_array_equal(log[NPY_DEVICE][0], table[:, 0])
        np.testing.assert_array_equal(log[NPY_DEVICE][1], table[:, 1:])
    np.save(tmp_path / "flat.npy", table[:, 0])
    with pytest.raises(MediaError, match="flat.npy.*'imu'.*numeric \\(N, 1 \\+ C\\) array"):
        read_imu_log(tmp_path / "flat.npy")


def test_csv_and_npz_read_every_device_at_its_own_rate(csv_log, npz_log):
    for log in map(read_imu_log, (csv_log, npz_log, csv_log.read_bytes(), npz_log.read_bytes())):
        assert sorted(log) == ["ankle", "wrist"]
        for device, table in devices().items():
            times, values = log[device]
            np.testing.assert_array_equal(times, table[:, 0])
            np.testing.assert_array_equal(values, table[:, 1:])


def test_csv_channels_are_selected_and_ordered(csv_log):
    times, values = read_imu_log(csv_log, channels=["gz", "ax"])["wrist"]
    np.testing.assert_array_equal(values, devices()["wrist"][:, [2, 1]])
    message = "devices \\['wrist', 'ankle'\\] have 2 channels \\['ax', 'gz'\\], not the 3 configured .*lacks \\['mz'\\]"
    with pytest.raises(MediaError, match=message):
        read_imu_log(csv_log, channels=["ax", "gz", "mz"])


def test_resample_is_exact_linear_interpolation(csv_log):
    out = resample_imu(read_imu_log(csv_log), 0.5, 1.0, {"wrist": 32.0, "ankle": 8.0})
    assert {name: tuple(value.shape) for name, value in out.items()} == {"wrist": (16, 2), "ankle": (4, 2)}
    assert out["wrist"].dtype == torch.float32
    # wrist at t = 0.5 + j / 32, i.e. k = 8 + j / 2: the samples on whole k, midpoints of k^2 and -k on half k
    j = np.arange(16)
    k = 8 + j / 2
    expected = np.stack([k**2 + 0.25 * (j % 2), -k], axis=1)
    torch.testing.assert_close(out["wrist"], torch.tensor(expected, dtype=torch.float32), rtol=0, atol=0)
    # ankle at t = 0.5, 0.625, 0.75, 0.875: k = 15.5, 19.5, 23.5, 27.5, half-way between ax = 3k and gz = -1 and 1
    expected = torch.tensor([[46.5, 0.0], [58.5, 0.0], [70.5, 0.0], [82.5, 0.0]])
    torch.testing.assert_close(out["ankle"], expected, rtol=0, atol=0)
    ankle = resample_imu(read_imu_log(csv_log), 0.25, 1.25, {"ankle": 5.0})["ankle"]  # t = 0.25, 0.45, ..., 1.05
    np.testing.assert_allclose(ankle[:, 0].numpy(), 3 * 32 * (0.25 + 0.2 * np.arange(5) - 1 / 64), rtol=1e-6)
    assert resample_imu(read_imu_log(csv_log), 0.0, 1.0, {"wrist": 3.0})["wrist"].shape == (3, 2)


def test_span_ending_on_the_last_sample_is_covered(npz_log):
    out = resample_imu(read_imu_log(npz_log), 1.5, 2.0 + 1 / 32, {"wrist": 32.0})["wrist"]  # last query t = 2.0
    assert out.shape == (17, 2)
    torch.testing.assert_close(out[-1], torch.tensor([1024.0, -32.0]), rtol=0, atol=0)


@pytest.mark.parametrize(("start", "end"), [(1.5, 2.5), (0.0, 0.5), (2.5, 3.0)])
def test_span_outside_the_log_is_a_media_error(npz_log, start, end):
    message = "'ankle' covers \\[0.015625, 1.95312\\] s|'wrist' covers \\[0, 2\\] s"
    with pytest.raises(MediaError, match=message) as error:
        resample_imu(read_imu_log(npz_log), start, end, {"wrist": 16.0, "ankle": 32.0}, path=str(npz_log))
    assert error.value.path == str(npz_log) and f"[{start:g}, {end:g})" in error.value.reason


def test_missing_device_is_a_media_error(csv_log):
    with pytest.raises(MediaError, match="'chest' is missing; the log has \\['ankle', 'wrist'\\]") as error:
        resample_imu(read_imu_log(csv_log), 0.5, 1.0, {"wrist": 8.0, "chest": 50.0}, path=str(csv_log))
    assert error.value.path == str(csv_log) and str(csv_log) in str(error.value)


def test_a_gap_anywhere_fails_the_whole_log_on_read(tmp_path):
    tables = devices()
    tables["wrist"] = np.delete(tables["wrist"], np.arange(9, 16), axis=0)  # 0.5625 .. 0.9375 s gone
    lines = csv_lines(tables)
    path = write_csv(tmp_path / "gap.csv", lines)
    number = line_of(lines, "1.0,wrist")
    message = f"'wrist': gap of 0.5 s from 0.5 to 1 s at line {number} \\(more than 2.5 times its sampling period"
    with pytest.raises(MediaError, match=message) as error:
        read_imu_log(path)  # whatever span is asked for later: the log is unusable
    assert error.value.path == str(path)
    bridged = resample_imu(read_imu_log(path, max_gap=0.6), 0.5, 1.0, {"wrist": 4.0})["wrist"]  # t = 0.5, 0.75
    torch.testing.assert_close(bridged[:, 0], torch.tensor([64.0, (64.0 + 256.0) / 2]), rtol=0, atol=0)
    with pytest.raises(MediaError, match="more than max_gap 0.4 s"):
        read_imu_log(path, max_gap=0.4)


def logger_csv(path, rates: dict[str, float], seconds: float, decimals: int, lost: dict[str, range] | None = None):
    """A CSV as a logger writes it: device d's clock t += 1 / rate accumulated in float, printed with
    ``decimals`` decimals; the samples at positions lost[d] are missing. Returns the path."""
    lines = []
    for device, rate in rates.items():
        t, skip = 0.0, (lost or {}).get(device, range(0))
        for i in range(int(seconds * rate) + 1):
            if i not in skip:
                lines.append((round(t, decimals), f"{t:.{decimals}f},{device},{i},{-i}"))
            t += 1 / rate
    lines.sort(key=lambda line: line[0])
    return write_csv(path, ["timestamp,device," + ",".join(CHANNELS)] + [text for _, text in lines])


@pytest.mark.parametrize("decimals", [1, 3, 6])
def test_logs_at_1_10_50_and_200_hz_pass_and_a_real_gap_is_caught(tmp_path, decimals):
    rates = {"slow": 1.0, "ten": 10.0, "fifty": 50.0, "fast": 200.0}
    if decimals == 1:  # 0.1 s resolution: only the 1 and 10 Hz devices can be written so
        rates = {"slow": 1.0, "ten": 10.0}
    log = read_imu_log(logger_csv(tmp_path / "log.csv", rates, 20.0, decimals))
    assert {device: len(log[device][0]) for device in rates} == {d: int(20 * r) + 1 for d, r in rates.items()}
    out = resample_imu(log, 8.2, 10.2, rates)  # 8.3 - 8.2 = 0.10000000000000142 in float: one 10 Hz period
    assert {device: tuple(values.shape) for device, values in out.items()} == {d: (2 * r, 2) for d, r in rates.items()}
    ten = logger_csv(tmp_path / "ten.csv", {"ten": 10.0}, 20.0, decimals)
    assert read_imu_log(ten, max_gap=0.1)  # an explicit max_gap of one 10 Hz period: float steps of 0.1 + 1 ulp pass
    for device, rate in rates.items():  # 3 samples lost in a row from t = 5 s: an interval of 4 periods
        k = round(5 * rate)
        path = logger_csv(tmp_path / f"{device}.csv", rates, 20.0, decimals, {device: range(k, k + 3)})
        with pytest.raises(MediaError, match=f"'{device}': gap of {4 / rate:g} s from {(k - 1) / rate:g} to "):
            read_imu_log(path)
        assert read_imu_log(path, max_gap=4.5)  # the override, over every device's gap, allows it
        one_lost = logger_csv(tmp_path / "one.csv", rates, 20.0, decimals, {device: range(k, k + 1)})
        assert read_imu_log(one_lost)  # a single lost sample (2 periods) is no gap


def replace_line(lines: list[str], prefix: str, new: str) -> tuple[list[str], int]:
    number = line_of(lines, prefix)
    return lines[: number - 1] + [new] + lines[number:], number


@pytest.mark.parametrize(
    ("prefix", "new", "device", "message"),
    [
        ("0.75,wrist", "0.75,wrist,nan,-12.0", "wrist", "non-finite value at line {line} \\(time 0.75 s\\)"),
        ("0.109375,ankle", "inf,ankle,9.0,-1.0", "ankle", "non-finite value at line {line} \\(time inf s\\)"),
        (
            "0.109375,ankle",
            "0.05,ankle,9.0,-1.0",
            "ankle",
            "timestamp 0.05 s at line {line} does not increase \\(previous 0.078125 s\\)",
        ),
        ("1.0,wrist", "0.9375,wrist,256.0,-16.0", "wrist", "timestamp 0.9375 s at line {line} does not increase"),
        ("1.0,wrist", "1.0,wrist,abc,-16.0", "", "line {line}: 'abc' is not a number"),
        ("1.0,wrist", "1.0,wrist,256.0", "", "line {line}: 3 fields, the header has 4"),
    ],
)
def test_bad_csv_rows_name_the_file_device_and_line(tmp_path, prefix, new, device, message):
    lines, number = replace_line(csv_lines(devices()), prefix, new)
    path = write_csv(tmp_path / "bad.csv", lines)
    message = (f"IMU device '{device}': " if device else "") + message.format(line=number)
    with pytest.raises(MediaError, match=message) as error:
        read_imu_log(path)
    assert error.value.path == str(path)


@pytest.mark.parametrize(
    ("row", "column", "value", "message"),
    [
        (3, 2, np.nan, "IMU device 'ankle': non-finite value at row 3 \\(time 0.109375 s\\)"),
        (5, 0, 0.05, "IMU device 'ankle': timestamp 0.05 s at row 5 does not increase"),
    ],
)
def test_bad_npz_rows_name_the_file_device_and_row(tmp_path, row, column, value, message):
    tables = devices()
    tables["ankle"][row, column] = value
    np.savez(tmp_path / "bad.npz", **tables)
    with pytest.raises(MediaError, match=message) as error:
        read_imu_log(tmp_path / "bad.npz")
    assert error.value.path == str(tmp_path / "bad.npz")


def test_malformed_logs_are_media_errors(tmp_path, npz_log):
    np.savez(tmp_path / "empty.npz", wrist=devices()["wrist"], ankle=np.zeros((0, 3)))
    with pytest.raises(MediaError, match="'ankle' has no samples"):
        read_imu_log(tmp_path / "empty.npz")
    with pytest.raises(MediaError, match="'wrist' has 2 channels, not the 3 configured \\['ax', 'ay', 'az'\\]"):
        read_imu_log(npz_log, channels=["ax", "ay", "az"])
    with pytest.raises(MediaError, match="header must be"):
        read_imu_log(write_csv(tmp_path / "header.csv", ["time,device,ax", "0.0,wrist,1.0"]))
    with pytest.raises(MediaError, match="no samples"):
        read_imu_log(write_csv(tmp_path / "rows.csv", ["timestamp,device,ax"]))
    with pytest.raises(MediaError) as error:
        read_imu_log(tmp_path / "absent.csv")
    assert error.value.path == str(tmp_path / "absent.csv")
    with pytest.raises(MediaError, match="not an NPZ") as error:
        read_imu_log(npz_log.read_bytes()[:100])
    assert error.value.path == "<bytes>"


def test_unreadable_paths_empty_files_and_empty_spans_say_so_in_words(tmp_path, csv_log):
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "folder.csv").mkdir()
    for path, reason in [("empty.csv", "empty file"), ("folder.csv", "cannot read IMU log: Is a directory"),
                         ("absent.csv", "cannot read IMU log: No such file or directory")]:
        with pytest.raises(MediaError) as error:
            read_imu_log(tmp_path / path)
        assert str(error.value) == f"{tmp_path / path}: {reason}"  # no errno, the path named once
    with pytest.raises(MediaError, match=r"imu.csv: empty span \[0.5, 0.5\) s"):
        resample_imu(read_imu_log(csv_log), 0.5, 0.5, {"wrist": 16.0}, path=str(csv_log))
    with pytest.raises(ValueError, match="max_gap must be a positive number of seconds"):
        read_imu_log(csv_log, max_gap=0.0)


def test_the_last_sample_of_a_slow_log_holds_for_its_interval(tmp_path):
    """A 10 Hz log of a 2 s clip ends at 1.9 s and covers [1, 2) at 32 Hz; two samples short does not."""
    times = np.arange(20) / 10.0
    values = np.stack([times, -times], axis=-1)
    log = {"wrist": (times, values)}
    out = resample_imu(log, 1.0, 2.0, {"wrist": 32.0})["wrist"]
    assert out.shape == (32, 2)
    np.testing.assert_array_equal(out[-3:, 0].numpy(), np.float32(1.9))  # held after the last sample
    short = {"wrist": (times[:-2], values[:-2])}  # ends at 1.7 s: 0.27 s before the last query
    with pytest.raises(MediaError, match=r"'wrist' covers \[0, 1.7\] s, not the span \[1, 2\)"):
        resample_imu(short, 1.0, 2.0, {"wrist": 32.0})
