"""Estimated optical flow as a sample's input: any dataset's clips get a `flow` entry from a flow
estimator (mmmae/masking/flow.py: FarnebackFlow, RAFTFlow), for a flow modality (FlowTokenizer).

MovingDigits needs no wrapper for ground-truth flow: every sample already carries `flow`.
"""

from collections.abc import Callable, Sequence

import einops
import gin
import torch
from torch.utils.data import Dataset

FlowEstimator = Callable[..., torch.Tensor]  # (batch, backward) -> (B, T-1, 2, H, W), mmmae/masking/flow.py


def forward_flow(estimator: FlowEstimator, video: torch.Tensor) -> torch.Tensor:
    """One clip (C, T, H, W) in [0, 1] -> its forward flow (2, T, H, W) float32, MovingDigits' layout:
    field t on frame t's grid, pointing to frame t+1. The estimator gives T-1 fields; the last
    frame repeats the last pair's field (MovingDigits' ground truth continues the motion there too)."""
    pairs = video.shape[1] - 1
    fields = estimator({"video": video[None]}, backward=[False] * pairs)[0]  # (T-1, 2, H, W)
    return einops.rearrange(torch.cat([fields, fields[-1:]]), "t xy h w -> xy t h w").float()


@gin.configurable(module="mmmae")
class WithEstimatedFlow(Dataset):
    """`dataset`'s samples with `key` (default 'flow') set to `estimator`'s forward flow of their
    `video` (see :func:`forward_flow`), replacing a ground-truth `flow` there.

    estimator: `@FarnebackFlow()` or `@RAFTFlow()` (weights from a local file); each sample's
    clip is estimated alone, in the loader's workers. A sample without video (`video_present`
    False) gets zeros; unreadable samples (None) and clips (a list, clips_per_video) pass through
    as the dataset gives them, each clip estimated. The dataset's own `collate` is kept.
    """

    def __init__(self, dataset: Dataset = gin.REQUIRED, estimator: FlowEstimator = gin.REQUIRED, key: str = "flow"):
        self.dataset, self.estimator, self.key = dataset, estimator, key
        collate = getattr(dataset, "collate", None)
        if collate is not None:
            self.collate = collate

    def __len__(self) -> int:
        return len(self.dataset)

    def with_flow(self, sample: dict) -> dict:
        if "video" not in sample:
            raise KeyError(f"WithEstimatedFlow estimates flow from a sample's 'video'; the samples of "
                           f"WithEstimatedFlow.dataset have keys {sorted(sample)}: add 'video' to its modalities")
        video = sample["video"]
        present = bool(sample.get("video_present", True))
        flow = forward_flow(self.estimator, video) if present else video.new_zeros(2, *video.shape[1:])
        return {**sample, self.key: flow}

    def __getitem__(self, index: int) -> dict | Sequence[dict] | None:
        sample = self.dataset[index]
        if sample is None:
            return None
        if isinstance(sample, list):
            return [self.with_flow(clip) for clip in sample]
        return self.with_flow(sample)
