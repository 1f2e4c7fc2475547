"""Segment-embedding datasets: a segment folder read back as samples, and sequences encoded on first use."""

import numpy as np
import pytest
import torch
from safetensors.torch import save_model

from mmmae.config import parse_config
from mmmae.data.moving_digits.dataset import MovingDigits
from mmmae.data.moving_digits.sequences import DigitSequences
from mmmae.eval.extract import extract_features
from mmmae.eval.segment_datasets import EncodedSegments, SegmentFeatures
from mmmae.eval.segments import extract_segments, segment_embeddings
from mmmae.model import MaskedAutoencoder
from tests.conftest import MICRO_GIN


@pytest.fixture
def run_dir(tmp_path):
    """A micro video model saved as a run folder."""
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "config.gin").write_text(f"include '{MICRO_GIN}'\n")
    parse_config([MICRO_GIN])
    torch.manual_seed(0)
    save_model(MaskedAutoencoder(), str(folder / "model.safetensors"))
    return folder


def sequences() -> DigitSequences:
    return DigitSequences(MovingDigits(num_samples=16, frames=4, size=16, digit_size=8), num_samples=4,
                          min_segments=2, max_segments=5)


def test_a_segment_folder_reads_back_as_samples(run_dir, tmp_path):
    data = sequences()
    encoded = EncodedSegments(data, str(run_dir))
    extract_segments(encoded.model, data, output_dir=tmp_path / "features", segment_frames=4, batch_size=3)
    folder = SegmentFeatures(str(tmp_path / "features"))
    assert len(folder) == 4
    for i in range(4):
        sample, direct = folder[i], data[i]
        assert sample["segments"].shape == (5, 32) and sample["segments"].dtype == torch.float32
        assert sample["segments_valid"].tolist() == [k < int(direct["num_segments"]) for k in range(5)]
        assert not sample["segments"][~sample["segments_valid"]].any()
        assert sample["first_label"] == direct["first_label"] and sample["index"] == i
        assert torch.equal(sample["segment_labels"], direct["segment_labels"])
        assert np.shares_memory(sample["segments"].numpy(), folder.arrays["segments"])  # a view, no copy


def test_encoded_segments_are_the_models_windows_and_kept(run_dir):
    data = sequences()
    encoded = EncodedSegments(data, str(run_dir))
    assert encoded.model is EncodedSegments(data, str(run_dir)).model  # one frozen model per weights file
    assert not encoded.model.training and not any(p.requires_grad for p in encoded.model.parameters())
    sample = encoded[1]
    with torch.no_grad():
        own, valid = segment_embeddings(encoded.model, "video", data[1]["video"][None], data[1]["video_frames"][None],
                                        4, 4)
    assert torch.equal(sample["segments"], own[0]) and torch.equal(sample["segments_valid"], valid[0])
    assert "video" not in sample and sample["last_label"] == data[1]["last_label"]
    assert encoded[1] is sample


def test_errors_name_the_setting(run_dir, tmp_path):
    with pytest.raises(ValueError, match="EncodedSegments.modality = 'audio'"):
        EncodedSegments(sequences(), str(run_dir), modality="audio")
    with pytest.raises(ValueError, match="segment_frames = 0"):
        EncodedSegments(sequences(), str(run_dir), segment_frames=0)
    with pytest.raises(ValueError, match="EncodedSegments.sequences, sample 0: .*fewer than one window"):
        EncodedSegments(sequences(), str(run_dir), segment_frames=24)[0]
    data = [{"video": torch.rand(3, 4, 16, 16)} for _ in range(2)]
    parse_config([MICRO_GIN])
    extract_features(MaskedAutoencoder().eval(), data, "video", tmp_path / "pooled")
    with pytest.raises(ValueError, match="mmmae extract --segment_frames"):
        SegmentFeatures(str(tmp_path / "pooled"))
