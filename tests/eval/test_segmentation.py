"""TemporalSegmentation: window features of long videos -> MS-TCN -> frame labels, scored and reported."""

import pytest
import torch
from torch.utils.data import Dataset

from mmmae.config import parse_config
from mmmae.data.moving_digits.action_sequences import ActionSequences
from mmmae.data.moving_digits.dataset import MovingDigits
from mmmae.eval.evaluate import evaluations, run_evaluations
from mmmae.eval.report import EVALUATION_LINES, comparison_lines, flat_metrics
from mmmae.eval.segmentation import MEASURES, TemporalSegmentation, frame_windows
from mmmae.types import Tokens
from tests.eval.fake_model import FakeModality, FakeModel


class FrameMeans(FakeModality):
    """Video (B, C, T, H, W) -> one token per frame, its mean colour (B, T, C)."""

    def tokenize(self, inputs: torch.Tensor) -> Tokens:
        x = inputs.mean(dim=(-1, -2)).transpose(1, 2)
        return Tokens(embed=x, target=None, grid=(x.shape[1],), valid=None)


class LabelVideos(Dataset):
    """ActionSequences' frame labels with a video that shows them: channel k lit on the frames of
    label k (`informative`), or a blank video."""

    def __init__(self, sequences: ActionSequences, informative: bool = True):
        self.sequences, self.informative, self.clips = sequences, informative, sequences.clips

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, index: int) -> dict:
        labels = self.sequences[index]["frame_labels"]
        video = torch.nn.functional.one_hot(labels, self.sequences.num_classes).T.float()[:, :, None, None]
        return {"video": video if self.informative else torch.zeros_like(video), "frame_labels": labels}


def label_videos(informative: bool = True) -> tuple[LabelVideos, LabelVideos]:
    clips = {split: MovingDigits(split=split, frames=4, size=16, digit_size=8) for split in ("train", "test")}
    return (LabelVideos(ActionSequences(clips["train"], num_samples=32, seed=1), informative),
            LabelVideos(ActionSequences(clips["test"], num_samples=16), informative))


def task(train, test, **kwargs) -> TemporalSegmentation:
    return TemporalSegmentation(train, test, **{"epochs": 30, "lr": 1e-2, "batch_size": 8, "resamples": 200,
                                                **kwargs})


def test_frame_windows_give_each_frame_the_window_centred_on_it():
    # windows of 4 every 2: window j covers frames 2j..2j+3, its centre 2j+1, 2j+2
    assert frame_windows(12, 4, 2).tolist() == [0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 4]
    assert frame_windows(8, 4, 4).tolist() == [0, 0, 0, 0, 1, 1, 1, 1]


def test_features_that_show_the_labels_segment_well_and_blank_ones_do_not():
    model = FakeModel({"video": FrameMeans()})
    seen = task(*label_videos())(model)
    blank = task(*label_videos(informative=False))(model)
    assert seen["window"] == 4 and seen["stride"] == 2  # the clips' frames, half a window
    assert seen["frame_accuracy"] >= 0.9 and seen["f1@50"] >= 0.8 and seen["edit"] >= 0.8 and seen["map"] >= 0.6
    # blank features: the head can only learn where labels tend to be, near the chance level
    assert blank["frame_accuracy"] < seen["frame_accuracy"] - 0.3 and blank["f1@50"] < seen["f1@50"] - 0.3
    for measure in MEASURES:
        low, high = seen[f"{measure}_ci"]
        assert 0 <= low <= seen[measure] <= high <= 1
    assert seen["train_sequences"] == 32 and seen["test_sequences"] == 16 and 0 < seen["chance"] < 1


def test_the_head_training_is_seeded():
    model = FakeModel({"video": FrameMeans()})
    train, test = label_videos()
    first, second = task(train, test, epochs=2)(model), task(train, test, epochs=2)(model)
    assert first == second


def test_runs_beside_random_init_and_is_reported():
    model, fresh = FakeModel({"video": FrameMeans()}), FakeModel({"video": FrameMeans()})
    entries = run_evaluations(model, [task(*label_videos(), epochs=2, resamples=20)], fresh)
    assert entries[0]["kind"] == "segmentation"
    lines = EVALUATION_LINES["segmentation"]("pretrained", entries[0]["pretrained"])
    assert lines[0].startswith("segmentation video (frame_labels), pretrained: frame accuracy ")
    assert "F1@50" in lines[0] and "mAP@0.1:0.5" in lines[0] and "32 train, 16 test videos" in lines[0]
    table = "\n".join(comparison_lines(entries))
    for text in ("frame accuracy", "edit", "F1@10", "F1@25", "F1@50", "mAP@0.1:0.5"):
        assert f"segmentation video {text}" in table
    metrics = flat_metrics({"evaluations": entries})
    assert metrics["segmentation video frame_labels f1@50 (random_init)"] == entries[0]["random_init"]["f1@50"]


def test_clear_errors():
    train, test = label_videos()
    with pytest.raises(ValueError, match="TemporalSegmentation.window: bind it"):
        TemporalSegmentation(torch.zeros(2), test)
    with pytest.raises(ValueError, match="no 'steps'"):
        task(train, test, label="steps")(FakeModel({"video": FrameMeans()}))
    with pytest.raises(ValueError, match="window = 200"):
        task(train, test, window=200)(FakeModel({"video": FrameMeans()}))


def test_the_gin_file_configures_it_on_top_of_a_model_config():
    parse_config(["recipes/quickstart_video.gin", "eval/segmentation.gin"])
    segmentation = [task for task in evaluations() if task.kind == "segmentation"]
    assert len(segmentation) == 1 and segmentation[0].window == 8 and segmentation[0].stride == 4  # the clips' 8
    train, test = segmentation[0].train_data, segmentation[0].test_data
    assert (train.clips.split, test.clips.split, len(train), len(test)) == ("train", "test", 128, 64)
    assert train.clips.size == 16  # the model config's MovingDigits settings
