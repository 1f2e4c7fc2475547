"""Tests for the IMU log reader on real CSV and NPZ files: several devices at several rates, exact
linear interpolation, and the checks (gaps, NaN, non-monotonic time, missing devices)."""

import numpy as np
import pytest
import torch

from mmmae.data.imu_reader import NPY_DEVICE, read_imu_log, resample_imu
from mmmae.data.media_errors import MediaError

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
    with pytest.raises(MediaError, match="no channels \\['mz'\\]"):
        read_imu_log(csv_log, channels=["ax", "mz"])


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


def test_gap_inside_the_span_is_a_media_error_outside_it_is_not(tmp_path):
    tables = devices()
    tables["wrist"] = np.delete(tables["wrist"], np.arange(9, 16), axis=0)  # 0.5625 .. 0.9375 s gone
    log = read_imu_log(write_csv(tmp_path / "gap.csv", csv_lines(tables)))
    with pytest.raises(MediaError, match="'wrist': gap of 0.5 s from 0.5 to 1 s") as error:
        resample_imu(log, 0.25, 0.75, {"wrist": 16.0}, path="gap.csv")
    assert error.value.path == "gap.csv"
    with pytest.raises(MediaError, match="gap"):  # the gap only touches the span's last instants
        resample_imu(log, 0.0, 0.5 + 1 / 64, {"wrist": 16.0})
    assert resample_imu(log, 1.0, 2.0, {"wrist": 16.0})["wrist"].shape == (16, 2)  # after the gap
    assert resample_imu(log, 0.0, 0.5, {"wrist": 16.0})["wrist"].shape == (8, 2)  # ends where the gap starts
    bridged = resample_imu(log, 0.5, 1.0, {"wrist": 4.0}, max_gap=0.6)["wrist"]  # t = 0.5, 0.75
    torch.testing.assert_close(bridged[:, 0], torch.tensor([64.0, (64.0 + 256.0) / 2]), rtol=0, atol=0)


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
    with pytest.raises(MediaError, match="'wrist' has 2 channels, not the 3 named"):
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
