"""Segment embeddings of long videos: window counts, each window's embedding is the model's own
normalised feature of it, padding, the segment feature folder, `mmmae extract` segment mode, errors."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_model

from mmmae.config import ConfigError, parse_config
from mmmae.data.moving_digits.dataset import MovingDigits
from mmmae.data.moving_digits.sequences import DigitSequences
from mmmae.eval.extract import extract_run, load_features
from mmmae.eval.segments import extract_segments, segment_embeddings, window_count
from mmmae.model import MaskedAutoencoder
from tests.conftest import MICRO_GIN
from tests.float32_bound import longest_sum, rounding_bound, transformer_stages


def micro_model() -> MaskedAutoencoder:
    parse_config([MICRO_GIN])
    torch.manual_seed(0)
    return MaskedAutoencoder().eval()


@pytest.mark.parametrize("frames, window, stride, expected", [(16, 4, 4, 4), (16, 4, 2, 7), (17, 4, 3, 5), (3, 4, 4, 0),
                                                             (4, 4, 1, 1)])
def test_window_count(frames, window, stride, expected):
    assert window_count(frames, window, stride) == expected


@pytest.mark.parametrize("stride", [4, 2])
def test_each_window_is_the_models_normalised_feature_and_padding_is_zero(stride):
    model = micro_model()
    video = torch.rand(2, 3, 16, 16, 16)
    frames = torch.tensor([16, 10])
    with torch.no_grad():
        embeddings, valid = segment_embeddings(model, "video", video, frames, window=4, stride=stride)
    slots = window_count(16, 4, stride)
    assert embeddings.shape == (2, slots, 32) and valid.shape == (2, slots)
    assert valid[0].all() and valid[1].sum() == window_count(10, 4, stride)
    assert not embeddings[~valid].any()
    for b, s in valid.nonzero().tolist():
        with torch.no_grad():
            own = F.normalize(model.features({"video": video[b:b + 1, :, s * stride:s * stride + 4]}, "video"), dim=-1)
        bound = rounding_bound(own, transformer_stages(model.encoder), longest_sum(model))  # other batch, same function
        torch.testing.assert_close(embeddings[b, s], own[0], atol=bound, rtol=0)
    torch.testing.assert_close(embeddings[valid].norm(dim=-1), torch.ones(int(valid.sum())))


def test_a_video_shorter_than_a_window_is_refused_by_name():
    with pytest.raises(ValueError, match=r"rows \[1\] have \[3\] frames, fewer than one window of segment_frames = 4"):
        segment_embeddings(micro_model(), "video", torch.rand(2, 3, 8, 16, 16), torch.tensor([8, 3]), 4, 4)


def sequences(n: int = 5) -> DigitSequences:
    return DigitSequences(MovingDigits(num_samples=32, frames=4, size=16, digit_size=8), num_samples=n,
                          min_segments=2, max_segments=4, repeat=0.5)


@pytest.mark.parametrize("fmt", ["safetensors", "npy"])
def test_a_segment_folder_holds_embeddings_valid_and_every_label(tmp_path, fmt):
    model, data = micro_model(), sequences()
    files = extract_segments(model, data, output_dir=tmp_path, segment_frames=4, fmt=fmt, shard_size=3, batch_size=2)
    arrays, info = load_features(tmp_path)
    assert files[-1] == tmp_path / "index.json" and [s["num_samples"] for s in info["shards"]] == [3, 2]
    assert info["segments"] == {"frames": 4, "stride": 4} and info["index_source"] == "index"
    assert arrays["features"].shape == (5, 4, 32) and arrays["valid"].shape == (5, 4)
    for i in range(5):
        sample = data[i]
        count = int(sample["num_segments"])
        assert arrays["valid"][i].tolist() == [k < count for k in range(4)]
        for name in ("first_label", "last_label", "num_segments", "segment_labels", "segment_directions"):
            np.testing.assert_array_equal(arrays[name][i], sample[name].numpy())
        with torch.no_grad():
            own, _ = segment_embeddings(model, "video", sample["video"][None], sample["video_frames"][None], 4, 4)
        bound = rounding_bound(own, transformer_stages(model.encoder), longest_sum(model))
        np.testing.assert_allclose(arrays["features"][i], own[0].numpy(), atol=bound, rtol=0)
    assert arrays["indices"].tolist() == list(range(5)) and "video_frames" not in arrays


def test_extract_run_segment_mode_from_a_run_folder(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.gin").write_text(f"include '{MICRO_GIN}'\n")
    save_model(micro_model(), str(run_dir / "model.safetensors"))
    with pytest.raises(ConfigError, match="bind extract_segments.dataset"):
        extract_run(run_dir, tmp_path / "features", segment_frames=4)
    with pytest.raises(ValueError, match="--segment_stride needs --segment_frames"):
        extract_run(run_dir, tmp_path / "features", segment_stride=2)
    params = ["extract_segments.dataset = @DigitSequences()", "DigitSequences.clips = @MovingDigits()",
              "DigitSequences.num_samples = 3", "DigitSequences.max_segments = 3", "MovingDigits.num_samples = 8"]
    extract_run(run_dir, tmp_path / "features", gin_params=params, segment_frames=4, segment_stride=2)
    arrays, info = load_features(tmp_path / "features")
    assert arrays["features"].shape == (3, window_count(12, 4, 2), 32)
    assert info["segments"] == {"frames": 4, "stride": 2} and info["metadata"]["model"] == str(run_dir)


def test_too_short_videos_name_the_samples(tmp_path):
    data = [{"video": torch.rand(3, 8, 16, 16), "video_frames": torch.tensor(f)} for f in (8, 2)]
    with pytest.raises(ValueError, match=r"extract_segments.dataset, samples \[0, 1\]: .* rows \[1\]"):
        extract_segments(micro_model(), data, output_dir=tmp_path, segment_frames=4)
