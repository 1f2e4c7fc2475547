"""WithEstimatedFlow: an estimator's forward flow as each sample's `flow`, in MovingDigits' layout."""

import pytest
import torch
from torch.utils.data import default_collate

from mmmae.data.flow_input import WithEstimatedFlow
from mmmae.masking.flow import FarnebackFlow
from tests.masking.test_flow import translating_texture


class PairIndexFlow:
    """A stand-in estimator: field t of every pair is filled with (t, -t); records the directions asked."""

    def __init__(self):
        self.asked = []

    def __call__(self, batch: dict, backward=None) -> torch.Tensor:
        self.asked.append(list(backward))
        batch_size, _, frames, height, width = batch["video"].shape
        pair = torch.arange(frames - 1, dtype=torch.float32)
        fields = torch.stack([pair, -pair], dim=1)[:, :, None, None].expand(-1, -1, height, width)
        return fields.expand(batch_size, -1, -1, -1, -1)


def test_each_sample_gets_forward_flow_with_the_last_pair_repeated():
    estimator = PairIndexFlow()
    samples = [{"video": torch.rand(3, 4, 8, 8), "flow": torch.zeros(2, 4, 8, 8)}, None,
               [{"video": torch.rand(3, 4, 8, 8)}, {"video": torch.rand(3, 4, 8, 8)}],
               {"video": torch.zeros(3, 4, 8, 8), "video_present": torch.tensor(False)}]
    data = WithEstimatedFlow(samples, estimator)
    first = data[0]
    assert first["flow"].shape == (2, 4, 8, 8) and torch.equal(first["video"], samples[0]["video"])
    assert first["flow"][:, :, 5, 3].tolist() == [[0, 1, 2, 2], [0, -1, -2, -2]]  # (dx, dy) per frame
    assert estimator.asked == [[False] * 3]  # forward fields: frame t's grid, pointing to frame t + 1
    assert data[1] is None
    assert [clip["flow"].shape for clip in data[2]] == [(2, 4, 8, 8)] * 2
    assert torch.equal(data[3]["flow"], torch.zeros(2, 4, 8, 8)) and len(estimator.asked) == 3


def test_farneback_flow_of_a_translation_and_the_kept_collate():
    class Clips(list):
        collate = staticmethod(default_collate)

    shift = (2, -1)
    video = translating_texture(shift)[0].expand(3, -1, -1, -1)  # (3, 2, 64, 64): one pair
    data = WithEstimatedFlow(Clips([{"video": video}]), FarnebackFlow())
    assert data.collate is Clips.collate
    flow = data[0]["flow"]
    assert flow.shape == (2, 2, 64, 64) and torch.equal(flow[:, 0], flow[:, 1])
    centre = flow[:, 0, 16:48, 16:48].flatten(1).median(dim=1).values
    assert [round(v) for v in centre.tolist()] == list(shift)  # forward: frame 0 -> 1 moves by the shift


def test_a_sample_without_video_names_the_wrapped_dataset():
    with pytest.raises(KeyError, match="WithEstimatedFlow.dataset have keys \\['audio'\\]: add 'video'"):
        WithEstimatedFlow([{"audio": torch.zeros(4)}], PairIndexFlow())[0]
