"""Tests for the MovingDigits synthetic video dataset."""

import gin
import numpy as np
import pytest
import torch

from mmmae.data.moving_digits import (
    DIRECTION_VECTORS,
    NUM_DIRECTIONS,
    SPLITS,
    MovingDigits,
    render_background,
    split_image_indices,
)


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


def test_splits_use_disjoint_images_and_all_classes():
    fixed = {split: set(split_image_indices(split).tolist()) for split in SPLITS}
    assert sum(map(len, fixed.values())) == 1797 and len(set.union(*fixed.values())) == 1797
    assert abs(len(fixed["train"]) - 0.7 * 1797) < 2 and abs(len(fixed["val"]) - 0.15 * 1797) < 2
    used = {}
    for split in SPLITS:
        data = MovingDigits(split=split, num_samples=400, seed=5)
        events = [data.event(i) for i in range(len(data))]
        used[split] = {event.image_index for event in events}
        assert used[split] <= fixed[split]
        assert {event.label for event in events} == set(range(10)), split
        assert int(data[0]["label"]) == events[0].label
    assert not used["train"] & used["val"]
    assert not used["train"] & used["test"]
    assert not used["val"] & used["test"]


def test_split_assignment_ignores_seed():
    a = {MovingDigits(split="val", seed=0).event(i).image_index for i in range(200)}
    b = {MovingDigits(split="val", seed=123).event(i).image_index for i in range(200)}
    assert a | b <= set(split_image_indices("val").tolist())


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
    for index in range(50):
        event = dataset.event(index)
        assert dataset.min_speed <= event.speed <= dataset.max_speed
        assert np.hypot(*event.velocity) == pytest.approx(event.speed)


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
