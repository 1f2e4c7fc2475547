"""Datasets of segment-embedding sequences (LV-MAE's input): read from a segment feature folder
(`mmmae extract --segment_frames`), or encoded on first use by a model named in gin.

A sample: segments (L, D) float32, L2-normalised rows, zero rows on padding; segments_valid (L,)
bool; index () int64; and the labels of the long video (DigitSequences: first_label, last_label,
num_segments, segment_labels, ...), under their own names.
"""


import gin
import numpy as np
import torch
from torch.utils.data import Dataset

from mmmae.eval.extract import load_features
from mmmae.eval.segments import check_windows, segment_embeddings
from mmmae.zoo.pretrained import frozen_model


@gin.configurable(module="mmmae")
class SegmentFeatures(Dataset):
    """The samples of a segment feature folder written by `mmmae extract --segment_frames`
    (mmmae/eval/segments.py): features -> segments, valid -> segments_valid, indices -> index,
    the other arrays under their names; each sample's tensors are views of the loaded arrays."""

    def __init__(self, folder: str = gin.REQUIRED):
        self.arrays, info = load_features(folder)
        if "segments" not in info or "valid" not in self.arrays:
            raise ValueError(f"SegmentFeatures.folder = {folder!r} holds pooled or token features, not segment "
                             "embeddings: write it with `mmmae extract --segment_frames N`")
        names = {"features": "segments", "valid": "segments_valid", "indices": "index"}
        self.arrays = {names.get(k, k): np.ascontiguousarray(v) for k, v in self.arrays.items()}

    def __len__(self) -> int:
        return len(self.arrays["segments"])

    def __getitem__(self, index: int) -> dict:
        return {name: torch.from_numpy(array[index, ...]) for name, array in self.arrays.items()}


@gin.configurable(module="mmmae")
class EncodedSegments(Dataset):
    """The long videos of `sequences` (e.g. DigitSequences) as segment embeddings by the frozen
    model `encoder` (`zoo.pretrained.frozen_model`): windows of `segment_frames` frames (None: the clips'
    frames, `sequences.clips.frames`) every `segment_stride` (None: back to back), encoded when
    a sample is first asked for and kept in memory. The `{modality}_frames` entry gives a
    sample's real frames (else the whole video); its other entries are passed on."""

    def __init__(self, sequences: Dataset = gin.REQUIRED, encoder: str = gin.REQUIRED, modality: str = "video",
                 segment_frames: int | None = None, segment_stride: int | None = None):
        self.sequences, self.encoder, self.modality = sequences, encoder, modality
        self.window = segment_frames if segment_frames is not None else sequences.clips.frames
        self.stride = self.window if segment_stride is None else segment_stride
        check_windows(self.window, self.stride, "EncodedSegments")
        self.model = frozen_model(encoder)
        if modality not in self.model.modalities:
            raise ValueError(f"EncodedSegments.modality = {modality!r}: the encoder {encoder!r} has the modalities "
                             f"{list(self.model.modalities)}")
        self.cache: dict[int, dict] = {}

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, index: int) -> dict:
        if index not in self.cache:
            sample = dict(self.sequences[index])
            video = sample.pop(self.modality)
            frames = sample.pop(f"{self.modality}_frames", torch.tensor(video.shape[1]))
            try:
                with torch.no_grad():
                    embeddings, valid = segment_embeddings(self.model, self.modality, video[None], frames[None],
                                                           self.window, self.stride)
            except ValueError as error:
                raise ValueError(f"EncodedSegments.sequences, sample {index}: {error}") from None
            self.cache[index] = {"segments": embeddings[0], "segments_valid": valid[0], **sample}
        return self.cache[index]
