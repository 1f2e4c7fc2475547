"""Feature extraction to disk: exact round trips in both formats, shards, tokens, absent and unreadable
samples, errors."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_model

from mmmae.config import ConfigError, parse_config
from mmmae.data.media.clip_sampling import DenseSampling
from mmmae.data.media.dataset import MediaDataset
from mmmae.data.media.layouts import manifest
from mmmae.data.media.synthetic import write_mp4
from mmmae.data.moving_digits.dataset import MovingDigits
from mmmae.eval.extract import extract_features, extract_run, load_features
from mmmae.eval.report import extract_lines
from mmmae.model import MaskedAutoencoder
from tests.conftest import MICRO_GIN
from tests.eval.fake_model import FakeModality, FakeModel
from tests.eval.flaky import FlakyDataset
from tests.float32_bound import longest_sum, rounding_bound, transformer_stages


def samples(n: int, seed: int = 0, absent: set[int] = frozenset(), with_index: bool = True) -> list[dict]:
    generator = torch.Generator().manual_seed(seed)
    data = []
    for i in range(n):
        sample = {"video": torch.randn(3, 4, generator=generator), "video_present": i not in absent, "label": i % 3}
        if with_index:
            sample["index"] = 100 + i
        data.append(sample)
    return data


@pytest.mark.parametrize("fmt", ["safetensors", "npy"])
def test_pooled_features_round_trip_exactly_in_shards(tmp_path, fmt):
    data = samples(8, absent={2, 5})
    model = FakeModel({"video": FakeModality()})
    files = extract_features(model, data, "video", tmp_path, fmt=fmt, shard_size=4, batch_size=3)
    arrays, info = load_features(tmp_path)
    present = [d for d in data if d["video_present"]]
    expected = torch.stack([d["video"].mean(dim=0) for d in present]).numpy()
    np.testing.assert_array_equal(arrays["features"], expected)
    assert arrays["features"].dtype == np.float32
    assert arrays["labels"].tolist() == [d["label"] for d in present]
    assert arrays["indices"].tolist() == [100, 101, 103, 104, 106, 107]
    assert [s["num_samples"] for s in info["shards"]] == [4, 2]
    assert info["num_samples"] == 6 and info["absent"] == 2 and info["left_out"] == 0
    assert info["index_source"] == "index"
    assert info["arrays"]["features"] == {"dtype": "float32", "shape": [4]} and info["fmt"] == fmt
    per_shard = 1 if fmt == "safetensors" else 3
    assert len(files) == 2 * per_shard + 1 and files[-1] == tmp_path / "index.json"
    assert all(f.is_file() for f in files) and sorted(tmp_path.iterdir()) == sorted(files)


@pytest.mark.parametrize("fmt", ["safetensors", "npy"])
def test_tokens_and_padding_round_trip_with_dataset_positions(tmp_path, fmt):
    data = [{"text": torch.cat([torch.randn(i + 1, 2), torch.zeros(3 - i, 2)]), "label": i} for i in range(4)]
    model = FakeModel({"text": FakeModality(padded=True)})
    extract_features(model, data, "text", tmp_path, fmt=fmt, pooled=False, shard_size=3, batch_size=2)
    arrays, info = load_features(tmp_path)
    np.testing.assert_array_equal(arrays["features"], torch.stack([d["text"] for d in data]).numpy())
    assert arrays["valid"].tolist() == [[j <= i for j in range(4)] for i in range(4)]
    assert arrays["indices"].tolist() == [0, 1, 2, 3] and info["index_source"] == "position"
    assert info["pooled"] is False and info["arrays"]["features"]["shape"] == [4, 2]


@pytest.mark.parametrize("with_index", [True, False])
def test_unreadable_samples_are_left_out_once_and_counted(tmp_path, with_index):
    data = FlakyDataset(samples(10, absent={8}, with_index=with_index), unreadable={0, 3, 4, 5, 9})
    extract_features(FakeModel({"video": FakeModality()}), data, "video", tmp_path, shard_size=3, batch_size=3)
    arrays, info = load_features(tmp_path)
    kept = [1, 2, 6, 7]  # readable and with video, each once
    expected = torch.stack([data.samples[i]["video"].mean(dim=0) for i in kept]).numpy()
    np.testing.assert_array_equal(arrays["features"], expected)
    assert arrays["indices"].tolist() == [100 + i if with_index else i for i in kept]
    assert arrays["labels"].tolist() == [i % 3 for i in kept]
    assert (info["num_samples"], info["absent"], info["left_out"]) == (4, 1, 5)


def test_six_files_five_unreadable_give_one_feature_row(tmp_path):
    data = FlakyDataset(samples(6), unreadable={0, 1, 2, 4, 5})
    extract_features(FakeModel({"video": FakeModality()}), data, "video", tmp_path, batch_size=4)
    arrays, info = load_features(tmp_path)
    assert arrays["features"].shape == (1, 4) and arrays["indices"].tolist() == [103]
    assert (info["num_samples"], info["left_out"]) == (1, 5)


def test_a_media_folder_of_six_files_five_broken_gives_one_feature_row(tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    good = media / "good.mp4"
    write_mp4(good, MovingDigits(num_samples=1, frames=8, size=16, digit_size=8)[0]["video"].numpy(), 8)
    (media / "empty.mp4").write_bytes(b"")
    (media / "text.mp4").write_text("not a video\n")
    (media / "truncated.mp4").write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    (media / "noise.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
    names = ["empty", "text", "missing", "good", "truncated", "noise"]
    (media / "manifest.csv").write_text("video,label\n" + "".join(f"{name}.mp4,{i}\n" for i, name in enumerate(names)))
    data = MediaDataset(manifest(media / "manifest.csv"), sampling=DenseSampling(frames=4, stride=1, mode="center"),
                        train=False)
    parse_config([MICRO_GIN])
    model = MaskedAutoencoder().eval()
    files = extract_features(model, data, "video", tmp_path / "features", batch_size=4)
    arrays, info = load_features(tmp_path / "features")
    clip = data[3]["video"][None]  # the batch held it alone too: the same computation, the same bits
    np.testing.assert_array_equal(arrays["features"], model.features({"video": clip}, "video").numpy())
    assert arrays["indices"].tolist() == [3] and arrays["labels"].tolist() == [3]
    assert (info["num_samples"], info["left_out"]) == (1, 5)
    assert "of 1 samples (0 without video left out, 5 left out (unreadable))" in extract_lines(files)[0]


def test_features_of_a_real_model_are_its_pooled_encodings(tmp_path):
    parse_config([MICRO_GIN])
    model = MaskedAutoencoder().eval()
    data = MovingDigits(num_samples=5, frames=4, size=16, digit_size=8)
    extract_features(model, data, "video", tmp_path, batch_size=2)
    arrays, _ = load_features(tmp_path)
    clips = torch.stack([data[i]["video"] for i in range(5)])
    expected = model.features({"video": clips}, "video")  # in other batches: equal up to float32 rounding
    bound = rounding_bound(expected, transformer_stages(model.encoder), longest_sum(model))
    np.testing.assert_allclose(arrays["features"], expected.numpy(), atol=bound, rtol=0)
    assert arrays["labels"].tolist() == [data[i]["label"] for i in range(5)]


def test_an_earlier_extraction_is_kept_unless_overwritten(tmp_path):
    model = FakeModel({"video": FakeModality()})
    extract_features(model, samples(6), "video", tmp_path, fmt="npy", shard_size=2)
    with pytest.raises(FileExistsError, match="index.json exists"):
        extract_features(model, samples(6), "video", tmp_path)
    files = extract_features(model, samples(3, seed=1), "video", tmp_path, shard_size=2, overwrite=True)
    assert sorted(tmp_path.iterdir()) == sorted(files)  # the old npy shards are gone
    assert json.loads((tmp_path / "index.json").read_text())["num_samples"] == 3


def test_errors_name_the_format_the_modality_and_a_folder_without_features(tmp_path):
    model = FakeModel({"video": FakeModality()})
    with pytest.raises(ValueError, match="fmt 'hdf5' is not one of"):
        extract_features(model, samples(2), "video", tmp_path, fmt="hdf5")
    with pytest.raises(ValueError, match="extract_features: the model has no modality 'audio'"):
        extract_features(model, samples(2), "audio", tmp_path)
    with pytest.raises(ValueError, match="extract_features.dataset: no sample has the modality 'video'"):
        extract_features(model, samples(2, absent={0, 1}), "video", tmp_path)
    with pytest.raises(ValueError, match=r"\(0 without it, 2 left out as unreadable: the warnings above name"):
        extract_features(model, FlakyDataset(samples(2), unreadable={0, 1}), "video", tmp_path)
    with pytest.raises(FileNotFoundError, match="written by extract_features"):
        load_features(tmp_path / "nothing")
    uneven = [{"video": torch.randn(2 + i // 2, 4)} for i in range(4)]
    with pytest.raises(ValueError, match="pooled=False needs one token count"):
        extract_features(model, uneven, "video", tmp_path / "tokens", pooled=False, batch_size=2)


def test_extract_a_run_with_the_dataset_bound_in_gin(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.gin").write_text(f"include '{MICRO_GIN}'\n")
    parse_config([MICRO_GIN])
    torch.manual_seed(3)
    model = MaskedAutoencoder().eval()
    save_model(model, str(run_dir / "model.safetensors"))
    with pytest.raises(ConfigError, match="bind extract_features.dataset"):
        extract_run(run_dir, tmp_path / "features")
    files = extract_run(run_dir, tmp_path / "features", gin_params=[
        "extract_features.dataset = @probe_test/MovingDigits()", "probe_test/MovingDigits.num_samples = 6",
        "extract_features.fmt = 'npy'"], shard_size=4)
    arrays, info = load_features(tmp_path / "features")
    assert info["fmt"] == "npy" and [s["num_samples"] for s in info["shards"]] == [4, 2]
    assert files[-1].name == "index.json" and info["metadata"] == {"model": str(run_dir), "model_dir": str(run_dir)}
    data = MovingDigits(split="test", num_samples=6, frames=4, size=16, digit_size=8)
    clips = torch.stack([data[i]["video"] for i in range(6)])
    expected = model.features({"video": clips}, "video")  # in other batches: equal up to float32 rounding
    bound = rounding_bound(expected, transformer_stages(model.encoder), longest_sum(model))
    np.testing.assert_allclose(arrays["features"], expected.numpy(), atol=bound, rtol=0)
    assert arrays["indices"].tolist() == list(range(6))
