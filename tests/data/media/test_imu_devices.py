"""IMU logs whose devices are named otherwise and sampled at other rates, mapped onto a model's devices."""

import gin
import numpy as np
import pytest
import torch

from mmmae.data.media.clip_sampling import DenseSampling
from mmmae.data.media.dataset import MediaDataset
from mmmae.data.media.errors import MediaError
from mmmae.data.media.imu_devices import ANTIALIAS_CORNER, ANTIALIAS_ORDER, device_map
from mmmae.data.media.imu_reader import read_imu_log, resample_imu
from mmmae.data.media.layouts import class_folder
from mmmae.data.media.synthetic import write_imu_csv, write_moving_digits_folder, write_mp4
from mmmae.data.moving_digits.dataset import MovingDigits
from mmmae.data.moving_digits.modalities.imu import DEFAULT_IMU_RATES

MODEL_RATES = dict(DEFAULT_IMU_RATES)  # what the quickstart models take: top_left, top_right, bottom, center
RENAME = {"top_left": "left_wrist", "top_right": "right_wrist", "bottom": "ankle", "center": "chest"}
LOG_RATE, CLIPS, FRAMES, SIZE, FPS = 100.0, 2, 16, 16, 8


@pytest.fixture(scope="module")
def foreign(tmp_path_factory):
    """Clips whose IMU logs name the devices left_wrist, right_wrist, ankle, chest, all at 100 Hz."""
    root = tmp_path_factory.mktemp("foreign")
    data = MovingDigits(split="test", num_samples=CLIPS, frames=FRAMES, size=SIZE, fps=FPS,
                        imu_rates={name: LOG_RATE for name in MODEL_RATES}, modalities=("video", "imu"))
    for index in range(CLIPS):
        sample = data[index]
        stem = root / "ab"[index % 2] / f"clip_{index}"  # two classes, for a probe
        stem.parent.mkdir(exist_ok=True)
        write_mp4(stem.with_suffix(".mp4"), sample["video"].numpy(), FPS)
        signals = {RENAME[name]: values.numpy() for name, values in sample["imu"].items()}
        write_imu_csv(stem.with_suffix(".csv"), signals, {name: LOG_RATE for name in signals})
    return root


@pytest.fixture(scope="module")
def native(tmp_path_factory):
    """Clips whose logs have the model's device names and rates."""
    root = tmp_path_factory.mktemp("native")
    write_moving_digits_folder(root, CLIPS, frames=FRAMES, size=SIZE)
    return root


def centred(root, **kwargs) -> MediaDataset:
    """Video and IMU of the middle second of each 2 s clip, span [0.5, 1.5) s."""
    return MediaDataset(class_folder(root), modalities=("video", "imu"), train=False, on_error="fail",
                        sampling=DenseSampling(frames=8, stride=1, mode="center"), **kwargs)


def test_a_mapped_log_is_read_at_the_models_rates(foreign):
    data = centred(foreign, imu_rates=MODEL_RATES, imu_devices=RENAME)
    for index in range(CLIPS):
        imu, path = data[index]["imu"], data.rows[index]["imu"]
        assert list(imu) == list(MODEL_RATES)
        expected = resample_imu(data.imu_map.select(read_imu_log(path), path), 0.5, 1.5, MODEL_RATES)
        for name, rate in MODEL_RATES.items():
            assert imu[name].shape == (int(rate), 6) and torch.equal(imu[name], expected[name])


def test_a_faster_log_is_low_passed_before_it_is_resampled():
    """100 Hz: a 0.5 Hz motion plus a 14 Hz vibration, read at 16 Hz (8 Hz Nyquist, 6.4 Hz corner)."""
    times, rate, corner = np.arange(1000) / 100, 16.0, ANTIALIAS_CORNER * 16.0
    motion, vibration = np.sin(2 * np.pi * 0.5 * times), np.sin(2 * np.pi * 14 * times)
    log = {"chest": (times, np.stack([motion + vibration, motion], axis=-1))}
    picked = device_map({"bottom": "chest"}, {"bottom": rate}, None).select(log, "log.csv")
    out = resample_imu(picked, 4.5, 5.5, {"bottom": rate})["bottom"].double().numpy()
    gain = 1 / (1 + (np.array([0.5, 14]) / corner) ** (2 * ANTIALIAS_ORDER))  # |H|^2: forward and backward
    interpolation = (2 * np.pi * 0.5) ** 2 * 0.01**2 / 8  # h^2 / 8 max|f''| of the motion at 100 Hz
    float32 = np.finfo(np.float32).eps * 2  # the output's rounding of values up to 2
    expected = np.sin(2 * np.pi * 0.5 * (4.5 + np.arange(16) / rate))
    bound = interpolation + (1 - gain[0]) + float32
    assert np.abs(out[:, 1] - expected).max() <= bound  # the motion is kept, not delayed
    assert np.abs(out[:, 0] - expected).max() <= bound + gain[1]  # the vibration does not alias to 2 Hz


def test_a_log_at_or_below_its_target_rate_is_only_interpolated():
    for log_rate in (16.0, 10.0):
        times = np.arange(40) / log_rate
        values = np.random.default_rng(0).normal(size=(40, 6))
        picked = device_map(None, {"bottom": 16.0}, None).select({"bottom": (times, values)}, "log.csv")
        assert picked["bottom"][0] is times and picked["bottom"][1] is values


def test_the_rates_default_to_the_models_imu_tokenizer(foreign):
    gin.parse_config(f"IMU_RATES = {MODEL_RATES}\nimu/IMUGraphTokenizer.sample_rates = %IMU_RATES")
    data = centred(foreign, imu_devices=RENAME)
    assert data.imu_rates == MODEL_RATES
    shapes = {name: tuple(values.shape) for name, values in data[0]["imu"].items()}
    assert shapes == {name: (int(rate), 6) for name, rate in MODEL_RATES.items()}


def test_a_log_at_the_models_names_and_rates_reads_as_before(native):
    plain, identity = centred(native, imu_rates=MODEL_RATES), centred(native, imu_rates=MODEL_RATES,
                                                                        imu_devices={n: n for n in MODEL_RATES})
    for index in range(CLIPS):
        before = resample_imu(read_imu_log(plain.rows[index]["imu"]), 0.5, 1.5, MODEL_RATES)
        for data in (plain, identity):
            imu = data[index]["imu"]
            assert list(imu) == list(before) and all(torch.equal(imu[n], before[n]) for n in before)


def test_a_model_device_without_a_log_device_names_the_file_the_device_and_the_fix(foreign):
    partial = {name: RENAME[name] for name in ("top_left", "top_right", "bottom")}
    data = centred(foreign, imu_rates=MODEL_RATES, imu_devices=partial)
    with pytest.raises(MediaError, match=r"clip_0\.csv: the model's IMU device 'center' is not in the log, which "
                                         r"has \['ankle', 'chest', .*MediaDataset\.imu_devices = \{'center': "):
        data.read(data.rows[0], 0)


def test_a_mapped_log_device_the_log_lacks_names_the_file_the_device_and_the_fix(foreign):
    data = centred(foreign, imu_rates=MODEL_RATES, imu_devices={**RENAME, "center": "belt"})
    with pytest.raises(MediaError, match=r"clip_0\.csv: MediaDataset\.imu_devices maps the model's IMU device "
                                         r"'center' to 'belt', which the log lacks; it has \['ankle', .*: map "
                                         r"'center' to one of them"):
        data.read(data.rows[0], 0)


def test_a_log_device_with_other_channels_than_the_models_names_the_file_the_device_and_the_fix(foreign):
    gin.parse_config(f"imu/IMUGraphTokenizer.sample_rates = {MODEL_RATES}")  # channels: the default, 6
    data = centred(foreign, imu_devices=RENAME, imu_channels=["ax", "ay", "az"])
    with pytest.raises(MediaError, match=r"clip_0\.csv: IMU device 'left_wrist' \(the model's 'top_left'\) has 3 "
                                         r"channels, the model's takes 6: name 6 of the log's channels in "
                                         r"MediaDataset\.imu_channels"):
        data.read(data.rows[0], 0)


def test_a_map_naming_a_device_the_model_lacks_names_the_binding():
    with pytest.raises(ValueError, match=r"MediaDataset\.imu_devices maps \['wrist'\], which the model lacks: its "
                                         r"keys are the model's IMU devices \['top_left', "):
        device_map({"wrist": "left_wrist"}, MODEL_RATES, None)
    with pytest.raises(ValueError, match=r"MediaDataset\.imu_devices: log device names must be strings"):
        device_map({"center": 3}, MODEL_RATES, None)
