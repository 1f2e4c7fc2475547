"""Fine-tuning: the loss (label smoothing, mixup), learning a separable task, multi-view testing."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmmae.config import parse_config
from mmmae.data.moving_digits.dataset import MovingDigits
from mmmae.data.transforms import Mixup
from mmmae.eval.finetune import FineTune
from mmmae.model import MaskedAutoencoder
from tests.conftest import MICRO_GIN
from tests.eval.flaky import FlakyDataset


@pytest.fixture
def micro_model() -> MaskedAutoencoder:
    """2 blocks of width 32; 4x16x16 clips in 2x8x8 tubelets."""
    parse_config([MICRO_GIN])
    torch.manual_seed(0)
    return MaskedAutoencoder()


def test_label_smoothing_loss_matches_the_hand_computed_one():
    logits, labels = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]]), torch.tensor([0, 1])
    task = FineTune(train_data=[], test_data=[], num_classes=3, label_smoothing=0.3)
    loss = task.loss(lambda x: logits, None, labels, np.random.default_rng(0))
    log_p = logits.log_softmax(-1)
    # target 1 - 0.3 + 0.3 / 3 = 0.8 on the class, 0.1 on the others
    by_hand = -(0.8 * log_p[0, 0] + 0.1 * log_p[0, 1] + 0.1 * log_p[0, 2]
                + 0.1 * log_p[1, 0] + 0.8 * log_p[1, 1] + 0.1 * log_p[1, 2]) / 2
    assert loss.item() == pytest.approx(by_hand.item(), rel=1e-6)
    assert loss.item() != pytest.approx(F.cross_entropy(logits, labels).item(), rel=1e-3)


def test_mixup_mixes_the_clips_and_the_smoothed_targets():
    clips, labels = torch.rand(4, 3, 2, 4, 4), torch.tensor([0, 1, 2, 1])
    task = FineTune(train_data=[], test_data=[], num_classes=3, label_smoothing=0.1, mixup=0.8, cutmix=0.0)
    seen = []

    def classify(x: torch.Tensor) -> torch.Tensor:
        seen.append(x)
        return torch.zeros(len(x), 3)

    loss = task.loss(classify, clips, labels, np.random.default_rng(3))
    expected = Mixup(alpha=0.8, cutmix_alpha=0.0, label_smoothing=0.1, num_classes=3, keys=("video",))(
        {"video": clips, "label": labels}, np.random.default_rng(3))
    lam = expected["mix_lambda"].item()
    assert 0 < lam < 1 and torch.allclose(seen[0], lam * clips + (1 - lam) * clips.flip(0))
    assert loss.item() == pytest.approx(np.log(3))  # uniform logits against any targets that sum to 1


def bright_or_dark(n: int, seed: int, frames: int = 4, size: int = 16) -> list[dict]:
    """Clips of noise around 0.3 (class 0) or 0.7 (class 1)."""
    generator = torch.Generator().manual_seed(seed)
    return [{"video": (0.3 + 0.4 * (i % 2) + 0.1 * torch.rand(3, frames, size, size, generator=generator)),
             "label": i % 2} for i in range(n)]


def test_learns_a_separable_task_and_leaves_the_model_unchanged(micro_model):
    before = {k: v.clone() for k, v in micro_model.state_dict().items()}
    task = FineTune(train_data=bright_or_dark(32, 0), test_data=bright_or_dark(16, 1, frames=6, size=20),
                    num_classes=2, epochs=4, batch_size=8, lr=3e-3, warmup_epochs=1, test_clips=2, test_crops=3)
    result = task(micro_model)
    assert result["test_accuracy"] == result["multi_view_accuracy"] == 1.0
    assert result["views"] == 6 and result["view_shape"] == [4, 16, 16] and result["steps"] == 16
    assert result["train_samples"] == 32 and result["test_samples"] == 16
    assert result["train_left_out"] == result["test_left_out"] == 0
    assert all(torch.equal(v, before[k]) for k, v in micro_model.state_dict().items())


def test_moving_digits_with_multi_view_mixup_and_absent_samples(micro_model):
    train = MovingDigits(num_samples=24, frames=4, size=16, digit_size=8, missing={"video": 0.25})
    test = MovingDigits(split="test", num_samples=12, frames=6, size=20, digit_size=8, missing={"video": 0.25})
    absent_train = sum(not train.presence(i)["video"] for i in range(24))
    absent_test = sum(not test.presence(i)["video"] for i in range(12))
    task = FineTune(train_data=train, test_data=test, num_classes=10, epochs=2, batch_size=8, mixup=0.8,
                    cutmix=1.0, drop_path=0.2, test_clips=2, test_crops=2, seed=1)
    result = task(micro_model)
    assert (result["train_absent"], result["test_absent"]) == (absent_train, absent_test) and absent_train > 0
    assert result["train_samples"] == 24 - absent_train and result["test_samples"] == 12 - absent_test
    assert result["views"] == 4 and 0 <= result["multi_view_accuracy"] <= 1
    assert task(micro_model) == result  # seeded


def test_unreadable_samples_are_left_out_once_and_counted_in_training_and_multi_view_test(micro_model):
    train = FlakyDataset(bright_or_dark(12, 0), unreadable={0, 1, 2, 3, 11})
    test = FlakyDataset(bright_or_dark(10, 1, frames=6, size=20), unreadable={2, 3, 4, 5, 9})
    settings = {"num_classes": 2, "epochs": 2, "batch_size": 4, "test_clips": 2, "test_crops": 2}
    result = FineTune(train_data=train, test_data=test, **settings)(micro_model)
    readable = FineTune(train_data=train, test_data=test.readable(), **settings)(micro_model)
    assert result == {**readable, "test_left_out": 5}  # the same test clips, each once
    assert (result["train_samples"], result["train_left_out"], result["test_samples"]) == (7, 5, 5)
    assert result["views"] == 4


def test_settings_the_modality_and_empty_splits_are_checked(micro_model):
    with pytest.raises(ValueError, match=r"FineTune: layer_decay = 1.5, average = 'max'"):
        FineTune(train_data=[], test_data=[], num_classes=2, layer_decay=1.5, average="max")
    with pytest.raises(ValueError, match="no modality 'audio'"):
        FineTune(train_data=[], test_data=[], num_classes=2, modality="audio")(micro_model)
    absent = [dict(sample, video_present=False) for sample in bright_or_dark(4, 0)]
    with pytest.raises(ValueError, match="FineTune.train_data: no sample has the modality 'video'"):
        FineTune(train_data=absent, test_data=absent, num_classes=2, epochs=1)(micro_model)


def test_the_classifier_passes_a_class_token_through_the_encoder_but_pools_without_it():
    from mmmae.eval.classifier import Classifier

    parse_config([MICRO_GIN], ["video/Modality.cls_token = True"])
    torch.manual_seed(0)
    model = MaskedAutoencoder().eval()
    classifier = Classifier(model, "video", num_classes=3).eval()
    torch.nn.init.normal_(classifier.head.weight)
    clips = torch.rand(2, 3, 4, 16, 16)
    before = classifier(clips)
    with torch.no_grad():
        classifier.modality.cls_token.add_(torch.randn_like(classifier.modality.cls_token))
    assert not torch.allclose(before, classifier(clips))  # the class token takes part in attention
    tokens = model.encode({"video": clips}, "video")[0]
    expected = classifier.head(classifier.fc_norm(tokens.mean(dim=1)))
    torch.testing.assert_close(before, expected)  # pooled over the patch tokens only, like model.encode
