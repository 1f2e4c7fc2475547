"""Temporal action segmentation of long videos on frozen features (Ego-Only's segmentation stage,
MS-TCN's head): the encoder slides over each video (windows of `window` frames every `stride`),
a multi-stage temporal convolutional network maps the window features to frame labels, scored by
frame accuracy, edit score, F1@{10,25,50} and detection mAP at tIoU 0.1-0.5
(mmmae/eval/segmentation_metrics.py), each with a bootstrap interval over the test videos."""

import gin
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import Dataset

from mmmae.data.moving_digits.action_sequences import BACKGROUND
from mmmae.eval.frozen import check_modality, frozen
from mmmae.eval.interval import CONFIDENCE
from mmmae.eval.loader import EvalLoader
from mmmae.eval.segmentation_metrics import VideoScores, summary, video_scores
from mmmae.eval.segments import check_windows, segment_embeddings, window_count

MEASURES = ("frame_accuracy", "edit", "f1@10", "f1@25", "f1@50", "map")


class DilatedResidual(nn.Module):
    """MS-TCN's layer: x + Conv1x1(Dropout(ReLU(dilated Conv3(x)))), on (B, C, L)."""

    def __init__(self, channels: int, dilation: int, dropout: float):
        super().__init__()
        self.dilated = nn.Conv1d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.mix = nn.Conv1d(channels, channels, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.dropout(self.mix(F.relu(self.dilated(x))))


class MultiStageTCN(nn.Module):
    """MS-TCN: `stages` stages of Conv1x1 -> `layers` DilatedResidual (dilation 2^i) -> Conv1x1 to
    `classes` logits; a later stage reads the softmax of the one before. (B, D, L) -> a list of
    (B, classes, L) logits, one per stage."""

    def __init__(self, dim: int, classes: int, channels: int, layers: int, stages: int, dropout: float):
        super().__init__()
        self.stages = nn.ModuleList(
            nn.Sequential(nn.Conv1d(dim if s == 0 else classes, channels, 1),
                          *(DilatedResidual(channels, 2**i, dropout) for i in range(layers)),
                          nn.Conv1d(channels, classes, 1))
            for s in range(stages))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = [self.stages[0](x)]
        for stage in self.stages[1:]:
            outputs.append(stage(F.softmax(outputs[-1], dim=1)))
        return outputs


def frame_windows(frames: int, window: int, stride: int) -> torch.Tensor:
    """(frames,) int64: the window whose central `stride` frames hold each frame (the first and last
    windows take the frames before and after), for windows of `window` frames every `stride`."""
    slots = window_count(frames, window, stride)
    offset = (window - stride) / 2
    return ((torch.arange(frames) - offset) / stride).floor().long().clamp(0, slots - 1)


def standardised(train: torch.Tensor, test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (N, L, D) of both splits scaled to zero mean, unit variance per dimension by the
    train windows' statistics (sklearn's StandardScaler, as LinearProbe)."""
    scaler = StandardScaler().fit(train.flatten(0, 1).numpy())
    return tuple(torch.from_numpy(scaler.transform(x.flatten(0, 1).numpy())).float().view_as(x) for x in (train, test))


def smoothing_loss(logits: torch.Tensor, clamp: float = 4.0) -> torch.Tensor:
    """MS-TCN's truncated MSE between the log-probabilities of neighbouring steps (B, K, L), the
    earlier step detached, each squared difference clamped at clamp^2."""
    log_p = F.log_softmax(logits, dim=1)
    return (log_p[:, :, 1:] - log_p.detach()[:, :, :-1]).pow(2).clamp(max=clamp**2).mean()


@gin.configurable(module="mmmae")
class TemporalSegmentation:
    """Frame labels of long videos from frozen window features, by an MS-TCN head.

    Each video of `train_data` and `test_data` (samples with `modality` (C, T, H, W) and `label`
    (T,) int64 frame labels, all T equal: e.g. ActionSequences) is encoded as windows of `window`
    frames (None: train_data.clips.frames, the clips the model was pretrained on) every `stride`
    (None: half a window) by segment_embeddings (the modality alone, unmasked, pooled,
    L2-normalised; `encode_batch_size` windows a forward) -> (L, D), standardised by the train
    windows' statistics (as LinearProbe). The head (MultiStageTCN:
    `stages`, `layers`, `channels`, `dropout`; MS-TCN has 4, 10, 64, 0.5, the defaults here 2, 6,
    32, 0.5, CPU-sized, a receptive field of 127 windows) is trained on the train videos for
    `epochs` (Adam, `lr`, batches of `batch_size` videos) with MS-TCN's loss per stage:
    cross-entropy on every frame (a frame reads its window's logits: frame_windows) plus
    `smoothing` x smoothing_loss. The last stage's softmax scores the test videos. `background`:
    the label whose runs are not segments (None: every run is one).
    Result: {"modality", "label", "window", "stride", "frame_accuracy", "edit", "f1@10", "f1@25",
    "f1@50", "map" (mean over tIoU 0.1..0.5) and "map@t" per tIoU, fractions in [0, 1]; "<m>_ci" for
    each of MEASURES, [low, high] 95 % percentile bootstrap over the test videos (`resamples`,
    `seed`); "chance" (the test frames' most frequent label's share), "train_frame_accuracy",
    "final_loss" (the last epoch's mean, summed over the stages), "epochs", "train_sequences",
    "test_sequences"}.
    """

    kind = "segmentation"

    def __init__(self, train_data: Dataset = gin.REQUIRED, test_data: Dataset = gin.REQUIRED, modality: str = "video",
                 label: str = "frame_labels", window: int | None = None, stride: int | None = None,
                 background: int | None = BACKGROUND,
                 stages: int = 2, layers: int = 6, channels: int = 32, dropout: float = 0.5, epochs: int = 100,
                 lr: float = 1e-3, batch_size: int = 16, smoothing: float = 0.15, encode_batch_size: int = 256,
                 resamples: int = 1000, seed: int = 0):
        if window is None:
            if not hasattr(train_data, "clips"):
                raise ValueError("TemporalSegmentation.window: bind it (frames a window, the model's clip length); "
                                 f"train_data ({type(train_data).__name__}) has no MovingDigits `clips` to read it "
                                 "from")
            window = train_data.clips.frames
        stride = max(1, window // 2) if stride is None else stride
        check_windows(window, stride, "TemporalSegmentation")
        if min(stages, layers, channels, epochs, batch_size, resamples) < 1 or not 0 <= dropout < 1:
            raise ValueError(f"TemporalSegmentation: stages, layers, channels, epochs, batch_size and resamples must "
                             f"be >= 1 and dropout in [0, 1), got {stages=}, {layers=}, {channels=}, {epochs=}, "
                             f"{batch_size=}, {resamples=}, {dropout=}")
        self.train_data, self.test_data, self.modality, self.label = train_data, test_data, modality, label
        self.window, self.stride, self.background = window, stride, background
        self.head = {"stages": stages, "layers": layers, "channels": channels, "dropout": dropout}
        self.epochs, self.lr, self.batch_size, self.smoothing = epochs, lr, batch_size, smoothing
        self.encode_batch_size, self.resamples, self.seed = encode_batch_size, resamples, seed

    def features(self, model, data: Dataset, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Window features (N, L, D) float32 and frame labels (N, T) int64 of every video of `data`."""
        features, labels = [], []
        with frozen(model):
            for _, batch in EvalLoader(data, self.batch_size):
                if self.label not in batch:
                    raise ValueError(f"TemporalSegmentation.{split}: the samples have no {self.label!r} (frame labels);"
                                     f" they have {sorted(batch)}")
                video = batch[self.modality]
                if batch[self.label].shape[-1] != video.shape[2]:
                    raise ValueError(f"TemporalSegmentation.{split}: {self.label!r} has {batch[self.label].shape[-1]} "
                                     f"labels for {video.shape[2]} frames; it needs one label per frame")
                try:
                    embedded, _ = segment_embeddings(model, self.modality, video, torch.full((len(video),),
                                                     video.shape[2]), self.window, self.stride, self.encode_batch_size)
                except ValueError as error:
                    raise ValueError(f"TemporalSegmentation.{split} (window = {self.window}): {error}") from None
                features.append(embedded)
                labels.append(batch[self.label].long())
        return torch.cat(features), torch.cat(labels)

    def train_head(self, x: torch.Tensor, y: torch.Tensor, classes: int) -> tuple[MultiStageTCN, float]:
        """Fit MultiStageTCN on features x (N, L, D) to frame labels y (N, T); returns it and the last epoch's loss."""
        head = MultiStageTCN(x.shape[-1], classes, **self.head)
        optimizer = torch.optim.Adam(head.parameters(), lr=self.lr)
        to_frames = frame_windows(y.shape[1], self.window, self.stride)
        generator = torch.Generator().manual_seed(self.seed)
        head.train()
        for _ in range(self.epochs):
            total = 0.0
            for rows in torch.randperm(len(x), generator=generator).split(self.batch_size):
                loss = sum(F.cross_entropy(logits[:, :, to_frames], y[rows]) + self.smoothing * smoothing_loss(logits)
                           for logits in head(x[rows].transpose(1, 2)))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += loss.item() * len(rows)
        return head.eval(), total / len(x)

    def probabilities(self, head: MultiStageTCN, x: torch.Tensor, frames: int) -> np.ndarray:
        """Frame class probabilities (N, T, K) of the head's last stage."""
        with torch.no_grad():
            logits = head(x.transpose(1, 2))[-1][:, :, frame_windows(frames, self.window, self.stride)]
        return F.softmax(logits, dim=1).transpose(1, 2).numpy()

    def __call__(self, model) -> dict:
        check_modality(model, self.modality, "TemporalSegmentation")
        x_train, y_train = self.features(model, self.train_data, "train_data")
        x_test, y_test = self.features(model, self.test_data, "test_data")
        classes = int(max(y_train.max(), y_test.max())) + 1
        x_train, x_test = standardised(x_train, x_test)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            head, final_loss = self.train_head(x_train, y_train, classes)
        train_scores = [video_scores(p, y, self.background)
                        for p, y in zip(self.probabilities(head, x_train, y_train.shape[1]), y_train.numpy())]
        scores = [video_scores(p, y, self.background)
                  for p, y in zip(self.probabilities(head, x_test, y_test.shape[1]), y_test.numpy())]
        counts = np.bincount(y_test.flatten().numpy())
        return {"modality": self.modality, "label": self.label, "window": self.window, "stride": self.stride,
                **summary(scores), **self.intervals(scores), "chance": float(counts.max() / counts.sum()),
                "train_frame_accuracy": summary(train_scores)["frame_accuracy"], "final_loss": final_loss,
                "epochs": self.epochs, "train_sequences": len(x_train), "test_sequences": len(x_test)}

    def intervals(self, scores: list[VideoScores]) -> dict[str, list[float]]:
        """{"<m>_ci": [low, high]} for MEASURES: 95 % percentile intervals over `resamples` bootstrap
        resamples of the test videos (drawn with replacement, seeded by `seed`)."""
        rng = np.random.default_rng(self.seed)
        draws = [summary([scores[i] for i in rng.integers(len(scores), size=len(scores))])
                 for _ in range(self.resamples)]
        tail = (1 - CONFIDENCE) / 2 * 100
        return {f"{m}_ci": [float(v) for v in np.percentile([d[m] for d in draws], [tail, 100 - tail])]
                for m in MEASURES}
