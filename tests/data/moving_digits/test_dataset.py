"""Tests for the MovingDigits synthetic video dataset."""

import gin
import numpy as np
import pytest
import torch

from mmmae.data.moving_digits.dataset import MovingDigits
from mmmae.data.moving_digits.events import DIRECTION_VECTORS, NUM_DIRECTIONS
from mmmae.data.moving_digits.modalities.text import DIGIT_WORDS, SPEED_WORDS, speed_class
from mmmae.data.moving_digits.modalities.video import render_background


@pytest.fixture(scope="module")
def dataset() -> MovingDigits:
    return MovingDigits(split="train", num_samples=512, frames=8, size=32, digit_size=12, channels=3)


def test_shapes_dtypes_and_range(dataset):
    sample = dataset[3]
    expected = {
        "video": ((3, 8, 32, 32), torch.float32),
        "label": ((), torch.int64),
        "direction": ((), torch.int64),
        "flow": ((2, 8, 32, 32), torch.float32),
        "digit_mask": ((8, 32, 32), torch.bool),
        "position": ((8, 2), torch.float32),
        "index": ((), torch.int64),
        "speed": ((), torch.float32),
        "speed_class": ((), torch.int64),
        "video_present": ((), torch.bool),
    }
    assert set(sample) == set(expected)
    for key, (shape, dtype) in expected.items():
        assert sample[key].shape == shape, key
        assert sample[key].dtype == dtype, key
    assert 0.0 <= sample["video"].min() and sample["video"].max() <= 1.0
    assert 0 <= sample["label"] <= 9 and 0 <= sample["direction"] < NUM_DIRECTIONS
    assert sample["index"] == 3


def test_other_geometry_and_channels():
    sample = MovingDigits(frames=3, size=20, digit_size=10, channels=1)[0]
    assert sample["video"].shape == (1, 3, 20, 20)
    assert sample["flow"].shape == (2, 3, 20, 20)
    assert sample["digit_mask"].shape == (3, 20, 20)


def test_deterministic_and_distinct(dataset):
    first = dataset[7]
    dataset[100]  # call order must not matter
    fresh = MovingDigits(split="train", num_samples=512)
    for again in (dataset[7], fresh[7]):
        for key in first:
            assert torch.equal(first[key], again[key]), key
    assert not torch.equal(first["video"], dataset[8]["video"])
    assert not torch.equal(first["video"], MovingDigits(split="train", seed=1)[7]["video"])
    assert not torch.equal(first["video"], MovingDigits(split="val")[7]["video"])


def test_dataloader_workers_match_direct_access(dataset):
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, range(8)), batch_size=4, num_workers=2)
    batch = next(iter(loader))
    assert batch["video"].shape == (4, 3, 8, 32, 32) and batch["label"].shape == (4,)
    for i in range(4):
        assert torch.equal(batch["video"][i], dataset[i]["video"])
        assert torch.equal(batch["flow"][i], dataset[i]["flow"])


def test_flow_warps_mask_onto_next_frame_and_is_zero_off_digit(dataset):
    for index in range(20):
        sample = dataset[index]
        mask, flow = sample["digit_mask"].numpy(), sample["flow"].numpy()
        assert mask.any(axis=(1, 2)).all()
        assert (flow[:, ~mask] == 0).all()
        assert (flow == np.round(flow)).all()
        for t in range(mask.shape[0] - 1):
            ys, xs = np.nonzero(mask[t])
            warped = np.zeros_like(mask[t])
            warped[ys + flow[1, t, ys, xs].astype(int), xs + flow[0, t, ys, xs].astype(int)] = True
            assert np.array_equal(warped, mask[t + 1]), (index, t)
            step = sample["position"][t + 1] - sample["position"][t]
            assert np.array_equal(flow[:, t, ys, xs], np.repeat(step.numpy()[:, None], len(ys), axis=1))


def test_direction_matches_displacement_sign(dataset):
    seen = set()
    for index in range(200):
        sample = dataset[index]
        direction = int(sample["direction"])
        seen.add(direction)
        displacement = (sample["position"][-1] - sample["position"][0]).numpy()
        np.testing.assert_array_equal(np.sign(displacement), np.sign(DIRECTION_VECTORS[direction]))
    assert seen == set(range(NUM_DIRECTIONS))
    # the convention: 0 right, 2 up (y grows downwards), 4 left, 6 down
    np.testing.assert_array_equal(DIRECTION_VECTORS[[0, 2, 4, 6]], [[1, 0], [0, -1], [-1, 0], [0, 1]])


def test_speed_within_bounds(dataset):
    t = np.arange(800) / 800  # one surge period (the clip: 8 frames at 8 fps)
    for index in range(50):
        event = dataset.event(index)
        assert dataset.min_speed <= event.speed <= dataset.max_speed
        assert np.hypot(*event.velocity) == pytest.approx(event.speed)
        assert event.path(t)[1].mean() / event.fps == pytest.approx(event.speed)  # the mean speed


def test_speed_class_of_each_sample_bins_its_speed_and_three_match_the_caption():
    five = MovingDigits(split="test", num_samples=200, min_speed=0.5, max_speed=2.0, speed_classes=5)
    classes = [int(five[i]["speed_class"]) for i in range(len(five))]
    assert classes == [speed_class(five.event(i).speed, 0.5, 2.0, 5) for i in range(len(five))]
    assert set(classes) == set(range(5))
    three = MovingDigits(split="test", num_samples=60, modalities=("text",))
    for i in range(len(three)):
        sample = three[i]
        assert sample["caption"].split()[3] == SPEED_WORDS[int(sample["speed_class"])]


@pytest.mark.parametrize("size", [32, 16, 12])
def test_digit_stays_inside_frame(size):
    data = MovingDigits(size=size, digit_size=12, frames=8, max_speed=3.0)
    for index in range(30):
        sample = data[index]
        area = sample["digit_mask"].sum(dim=(1, 2))
        assert (area == area[0]).all() and area[0] > 0
        assert (sample["position"] >= 0).all() and (sample["position"] <= size - 12).all()


def test_digit_brighter_than_background(dataset):
    for index in range(10):
        event, sample = dataset.event(index), dataset[index]
        background = torch.from_numpy(render_background(event.background_seed, 3, 32))
        assert 0.0 <= background.min() and background.max() <= 0.5
        mask = sample["digit_mask"]
        on_digit = sample["video"][:, mask]
        under_digit = background[:, None].expand(-1, 8, -1, -1)[:, mask]
        assert (on_digit > under_digit).all()
        assert on_digit.mean() > sample["video"][:, ~mask].mean() + 0.2


def test_background_is_static_off_digit(dataset):
    sample = dataset[11]
    box = torch.zeros(8, 32, 32, dtype=torch.bool)
    for t, (x, y) in enumerate(sample["position"].long().tolist()):
        box[t, y : y + 12, x : x + 12] = True
    outside = ~box.any(dim=0)  # pixels never touched by the digit's box
    event = dataset.event(11)
    background = torch.from_numpy(render_background(event.background_seed, 3, 32))
    video = sample["video"][:, :, outside]
    assert outside.any() and torch.equal(video, background[:, None, outside].expand_as(video))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"split": "training"}, "split"),
        ({"frames": 0}, "frames"),
        ({"size": 8, "digit_size": 12}, "size"),
        ({"num_samples": 0}, "num_samples"),
        ({"digit_size": 0}, "digit_size"),
        ({"channels": 0}, "channels"),
        ({"min_speed": 0.0}, "min_speed"),
        ({"min_speed": 3.0, "max_speed": 2.0}, "max_speed"),
        ({"seed": -1}, "seed"),
        ({"fps": 0.0}, "fps"),
        ({"surge": 1.0}, "surge"),
        ({"sway": -0.1}, "sway"),
        ({"imu_noise": -1.0}, "imu_noise"),
        ({"sample_rate": 0}, "sample_rate"),
        ({"text_length": 0}, "text_length"),
        ({"speed_classes": 0}, "speed_classes"),
        ({"speed_classes": 2.5}, "speed_classes"),
        ({"speed_classes": True}, "speed_classes"),
        ({"modalities": ("video", "smell")}, "modalities"),
        ({"modalities": ()}, "modalities"),
        ({"missing": {"audio": 0.5}}, "missing"),
        ({"modalities": ("audio",), "missing": {"audio": 1.5}}, "missing"),
        ({"modalities": ("imu",), "frames": 8, "fps": 3.0}, "top_left"),
    ],
)
def test_bad_arguments_raise(kwargs, name):
    with pytest.raises(ValueError, match=name):
        MovingDigits(**kwargs)


def test_index_out_of_range(dataset):
    with pytest.raises(IndexError):
        dataset[len(dataset)]


def test_gin_configurable():
    try:
        gin.parse_config("MovingDigits.frames = 4\nmmmae.MovingDigits.size = 24")
        assert MovingDigits()[0]["video"].shape == (3, 4, 24, 24)
    finally:
        gin.clear_config()


ALL = ("video", "audio", "imu", "text")
QUICKSTART = dict(num_samples=64, frames=8, size=16, digit_size=12, min_speed=0.25, max_speed=0.5)


@pytest.fixture(scope="module")
def multimodal() -> MovingDigits:
    """The quickstart geometry with every modality: 1 s clips."""
    return MovingDigits(**QUICKSTART, modalities=ALL)


def test_fps_sets_the_duration_not_the_pixels():
    slow, fast = (MovingDigits(modalities=ALL, fps=fps) for fps in (4.0, 16.0))
    a, b = slow[2], fast[2]
    assert torch.equal(a["video"], b["video"]) and torch.equal(a["flow"], b["flow"])
    assert a["audio"].shape == (32000,) and b["audio"].shape == (8000,)
    assert a["imu"]["center"].shape == (128, 6) and b["imu"]["center"].shape == (32, 6)
    assert slow.event(2).surge_period == 2.0 and fast.event(2).surge_period == 0.5


def test_all_modalities_shapes_and_dtypes(multimodal):
    sample = multimodal[5]
    assert sample["video"].shape == (3, 8, 16, 16) and sample["video"].dtype == torch.float32
    assert sample["audio"].shape == (16000,) and sample["audio"].dtype == torch.float32
    assert -1 <= sample["audio"].min() and sample["audio"].max() <= 1
    assert {name: tuple(x.shape) for name, x in sample["imu"].items()} == {
        "top_left": (32, 6), "top_right": (32, 6), "bottom": (16, 6), "center": (64, 6)
    }
    assert all(x.dtype == torch.float32 for x in sample["imu"].values())
    assert sample["text"].shape == (48,) and sample["text"].dtype == torch.int64
    assert isinstance(sample["caption"], str) and sample["caption"].split()[1] in DIGIT_WORDS
    for modality in ALL:
        assert sample[f"{modality}_present"].dtype == torch.bool and bool(sample[f"{modality}_present"])
    assert sample["speed"] == pytest.approx(multimodal.event(5).speed)
    assert {"label", "direction", "flow", "digit_mask", "position", "index"} <= set(sample)
    assert "audio" not in MovingDigits()[0]


def test_all_modalities_deterministic(multimodal):
    first = multimodal[9]
    again = MovingDigits(**QUICKSTART, modalities=ALL)[9]
    for key in ("video", "audio", "text", "label"):
        assert torch.equal(first[key], again[key]), key
    assert all(torch.equal(first["imu"][name], again["imu"][name]) for name in first["imu"])
    assert first["caption"] == again["caption"]
    assert not torch.equal(first["audio"], multimodal[10]["audio"])


def test_missing_rate_and_blanks():
    missing = {"audio": 0.3, "imu": 0.5, "text": 1.0}
    data = MovingDigits(num_samples=600, frames=8, size=16, modalities=ALL, missing=missing)
    presence = [data.presence(i) for i in range(600)]
    assert all(p["video"] for p in presence) and not any(p["text"] for p in presence)
    assert np.mean([p["audio"] for p in presence]) == pytest.approx(0.7, abs=0.06)
    assert np.mean([p["imu"] for p in presence]) == pytest.approx(0.5, abs=0.06)
    # each modality's draw is the sample's own: the same whatever else is requested or missing
    alone = MovingDigits(num_samples=600, frames=8, size=16, modalities=("audio",), missing={"audio": 0.3})
    assert [alone.presence(i)["audio"] for i in range(600)] == [p["audio"] for p in presence]
    absent = next(i for i, p in enumerate(presence) if not p["audio"] and not p["imu"])
    sample = data[absent]
    assert not sample["audio_present"] and not sample["imu_present"] and not sample["text_present"]
    assert sample["audio"].shape == (16000,) and not sample["audio"].any()
    assert all(x.shape == data[0]["imu"][name].shape and not x.any() for name, x in sample["imu"].items())
    assert (sample["text"] == data.tokenizer.pad_token_id).all() and sample["caption"] == ""
    assert sample["video_present"] and sample["video"].any()
    present = next(i for i, p in enumerate(presence) if p["audio"])
    assert data[present]["audio_present"] and data[present]["audio"].any()


def test_missing_video_keeps_side_channels():
    data = MovingDigits(num_samples=4, frames=4, size=16, missing={"video": 1.0})
    sample = data[0]
    assert not sample["video_present"] and not sample["video"].any() and sample["video"].shape == (3, 4, 16, 16)
    assert sample["digit_mask"].any()


def test_dataloader_collates_imu_dict_and_strings(multimodal):
    loader = torch.utils.data.DataLoader(multimodal, batch_size=4, num_workers=2)
    batch = next(iter(loader))
    assert batch["video"].shape == (4, 3, 8, 16, 16) and batch["audio"].shape == (4, 16000)
    assert set(batch["imu"]) == set(multimodal.imu_rates) and batch["imu"]["center"].shape == (4, 64, 6)
    assert batch["text"].shape == (4, 48) and batch["audio_present"].shape == (4,)
    assert isinstance(batch["caption"], list) and len(batch["caption"]) == 4
    for i in range(4):
        direct = multimodal[i]
        assert batch["caption"][i] == direct["caption"]
        assert torch.equal(batch["imu"]["bottom"][i], direct["imu"]["bottom"])
        assert torch.equal(batch["audio"][i], direct["audio"]) and torch.equal(batch["text"][i], direct["text"])


@pytest.mark.parametrize("cycles", [1.0, 0.5])
def test_surge_cycles_set_whether_the_mean_acceleration_shows_the_direction(cycles):
    data = MovingDigits(surge_cycles=cycles, modalities=["imu"], imu_noise=0.0, sway=0.0)
    for index in range(8):
        event = data.event(index)
        assert event.surge_period == pytest.approx(1.0 / cycles)  # 8 frames at 8 fps: a 1 s clip
        centre = data[index]["imu"]["center"][:, :2].double().mean(0).numpy()  # body = screen frame without sway
        heading = DIRECTION_VECTORS[event.direction] * (1, -1)  # image y down -> physics y up
        along = float(centre @ heading) / np.linalg.norm(heading)
        if cycles == 1.0:  # slows down and speeds up again: the mean cancels (up to sampling)
            assert abs(along) < 0.05 * np.abs(data[index]["imu"]["center"][:, :2].numpy()).max()
        else:  # only slows down: the mean acceleration points against the motion
            assert along < 0 and np.linalg.norm(centre - along * heading / np.linalg.norm(heading)) < 1e-3 * abs(along)
