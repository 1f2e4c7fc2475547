"""Full fine-tuning of a copy of the encoder with a classifier (VideoMAE's recipe, scaled down):
layer-wise lr decay, drop path, label smoothing, optional Mixup / CutMix, a warmup-cosine
schedule, and a multi-view test. Float32, on the model's device."""

from collections.abc import Sequence

import gin
import numpy as np
import torch
import torch.nn.functional as F
from accelerate.utils import send_to_device
from torch.utils.data import Dataset, IterableDataset
from transformers import get_cosine_with_min_lr_schedule_with_warmup

from mmmae.data.transforms import Mixup
from mmmae.eval.classifier import Classifier
from mmmae.eval.frozen import check_modality, present_rows
from mmmae.eval.interval import wilson_interval
from mmmae.eval.layer_decay import layer_decay_groups
from mmmae.eval.loader import EvalLoader, no_samples_error
from mmmae.eval.multi_view import AVERAGES, average_views, clip_views


def take_rows(value, rows: torch.Tensor):
    """The rows (B,) bool of a batch entry: a tensor, or a dict of them (IMU devices)."""
    if isinstance(value, dict):
        return {key: take_rows(item, rows) for key, item in value.items()}
    return value[rows]


@gin.configurable(module="mmmae")
class FineTune:
    """Fine-tune a copy of the model's tokenizer and encoder for `modality` with a Classifier (mean
    pooling, fc_norm, linear head) on `train_data`; report test accuracy on `test_data`.

    Training: `epochs` epochs of shuffled batches (seeded by `seed`), AdamW (`lr`, `betas`,
    `weight_decay` on weight matrices only) with per-layer lr scales `layer_decay` ** (L + 1 -
    layer) (layer 0 the tokenizer, L + 1 the head), `warmup_epochs` of linear warmup then a
    cosine to `min_lr_ratio` * lr; drop path rising linearly to `drop_path` over the blocks;
    cross-entropy against label-smoothed targets (`label_smoothing`); with `mixup` or `cutmix`
    alpha > 0, a batch is mixed with probability `mix_prob` (Mixup or CutMix, switched with
    `switch_prob`: mmmae.data.transforms.Mixup); `clip_grad` caps the gradient norm.
    Test: the single view is the centre clip and crop of the size the training clips had;
    multi-view averages `test_clips` evenly spaced clips x `test_crops` crops (`average`:
    softmax probabilities or logits). Test clips as large as the training ones give one view.
    Samples that lack the modality, and unreadable ones, are left out and counted (train: in the
    last epoch). The model itself is not changed.
    Result: {"modality", "label", "test_accuracy" (single view), "multi_view_accuracy", each with
    its Wilson 95 % interval "test_accuracy_ci" / "multi_view_accuracy_ci" ([low, high]),
    "views", "view_shape", "train_loss" (the last epoch's mean), "epochs", "steps",
    "train_samples", "test_samples", "train_absent", "test_absent", "train_left_out",
    "test_left_out" (unreadable)}.
    """

    kind = "finetune"

    def __init__(self, train_data: Dataset = gin.REQUIRED, test_data: Dataset = gin.REQUIRED,
                 num_classes: int = gin.REQUIRED, modality: str = "video", label: str = "label", epochs: int = 10,
                 batch_size: int = 32, lr: float = 1e-3, betas: Sequence[float] = (0.9, 0.999),
                 weight_decay: float = 0.05, warmup_epochs: int = 1, min_lr_ratio: float = 0.0,
                 layer_decay: float = 0.75, drop_path: float = 0.1, label_smoothing: float = 0.1, mixup: float = 0.0,
                 cutmix: float = 0.0, mix_prob: float = 1.0, switch_prob: float = 0.5, clip_grad: float | None = None,
                 test_clips: int = 1, test_crops: int = 1, average: str = "softmax", seed: int = 0):
        checks = [("num_classes", num_classes, num_classes >= 1), ("epochs", epochs, epochs >= 1),
                  ("batch_size", batch_size, batch_size >= 1), ("layer_decay", layer_decay, 0 < layer_decay <= 1),
                  ("drop_path", drop_path, 0 <= drop_path < 1),
                  ("label_smoothing", label_smoothing, 0 <= label_smoothing <= 1),
                  ("test_clips", test_clips, test_clips >= 1), ("test_crops", test_crops, test_crops >= 1),
                  ("average", average, average in AVERAGES)]
        if bad := [f"{name} = {value!r}" for name, value, ok in checks if not ok]:
            raise ValueError(f"FineTune: {', '.join(bad)} out of range (need num_classes, epochs, batch_size, "
                             "test_clips, test_crops >= 1, 0 < layer_decay <= 1, 0 <= drop_path < 1, "
                             f"0 <= label_smoothing <= 1, average in {AVERAGES})")
        self.train_data, self.test_data, self.num_classes = train_data, test_data, num_classes
        self.modality, self.label, self.epochs, self.batch_size = modality, label, epochs, batch_size
        self.lr, self.betas, self.weight_decay = lr, tuple(betas), weight_decay
        self.warmup_epochs, self.min_lr_ratio, self.layer_decay = warmup_epochs, min_lr_ratio, layer_decay
        self.drop_path, self.label_smoothing, self.clip_grad = drop_path, label_smoothing, clip_grad
        self.mixup = (Mixup(alpha=mixup, cutmix_alpha=cutmix, prob=mix_prob, label_smoothing=label_smoothing,
                            num_classes=num_classes, switch_prob=switch_prob, keys=(modality,))
                      if mixup > 0 or cutmix > 0 else None)
        self.test_clips, self.test_crops, self.average, self.seed = test_clips, test_crops, average, seed

    def loss(self, classifier: Classifier, inputs, labels: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """Cross-entropy of one batch against smoothed (and, with mixup, mixed) targets."""
        if self.mixup is None:
            return F.cross_entropy(classifier(inputs), labels, label_smoothing=self.label_smoothing)
        mixed = self.mixup({self.modality: inputs, "label": labels}, rng)
        return F.cross_entropy(classifier(mixed[self.modality]), mixed["soft_label"])

    def __call__(self, model) -> dict:
        check_modality(model, self.modality, "FineTune")
        device = next(model.parameters()).device
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            classifier = Classifier(model, self.modality, self.num_classes).to(device=device, dtype=torch.float32)
            classifier.set_drop_path(self.drop_path)
            train = self._train(classifier, device)
        test = self._test(classifier, train.pop("view_shape"), device)
        return {"modality": self.modality, "label": self.label, **test, **train}

    def _train(self, classifier: Classifier, device: torch.device) -> dict:
        loader = EvalLoader(self.train_data, self.batch_size,  # a stream comes in its own order
                            shuffle=not isinstance(self.train_data, IterableDataset),
                            generator=torch.Generator().manual_seed(self.seed))
        steps, warmup = self.epochs * len(loader), self.warmup_epochs * len(loader)
        optimizer = torch.optim.AdamW(layer_decay_groups(classifier, self.lr, self.weight_decay, self.layer_decay),
                                      lr=self.lr, betas=self.betas)
        schedule = get_cosine_with_min_lr_schedule_with_warmup(optimizer, num_warmup_steps=warmup,
                                                               num_training_steps=steps, min_lr_rate=self.min_lr_ratio)
        rng = np.random.default_rng(self.seed)
        view_shape, samples, absent = None, 0, 0
        classifier.train()
        for _ in range(self.epochs):
            total, samples, absent = 0.0, 0, 0
            for _, batch in loader:
                present = present_rows(batch, self.modality)
                absent += int((~present).sum())
                if present.any():
                    inputs = send_to_device(take_rows(batch[self.modality], present), device)
                    if view_shape is None and isinstance(inputs, torch.Tensor) and inputs.ndim == 5:
                        view_shape = tuple(inputs.shape[-3:])
                    loss = self.loss(classifier, inputs, batch[self.label][present].long().to(device), rng)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if self.clip_grad is not None:
                        torch.nn.utils.clip_grad_norm_(classifier.parameters(), self.clip_grad)
                    optimizer.step()
                    schedule.step()
                    total += loss.item() * int(present.sum())
                    samples += int(present.sum())
        if samples == 0:
            raise no_samples_error("FineTune.train_data", self.modality, absent, loader.left_out)
        classifier.eval()
        return {"train_loss": total / samples, "epochs": self.epochs, "steps": steps, "train_samples": samples,
                "train_absent": absent, "train_left_out": loader.left_out, "view_shape": view_shape}

    @torch.no_grad()
    def _test(self, classifier: Classifier, view_shape: tuple[int, int, int] | None, device: torch.device) -> dict:
        views = self.test_clips * self.test_crops
        single, multi, samples, absent = 0, 0, 0, 0
        loader = EvalLoader(self.test_data, self.batch_size)
        for _, batch in loader:
            present = present_rows(batch, self.modality)
            absent += int((~present).sum())
            if not present.any():
                continue
            inputs = send_to_device(take_rows(batch[self.modality], present), device)
            labels = batch[self.label][present].to(device)
            if view_shape is None:
                if views > 1:
                    raise ValueError(f"FineTune.test_clips x test_crops = {views} views: multi-view testing needs "
                                     f"clips (B, C, T, H, W); {self.modality!r} is not one")
                centre, averaged = inputs, None
            else:
                centre = clip_views(inputs, view_shape, 1, 1)[0]
                averaged = average_views(classifier, clip_views(inputs, view_shape, self.test_clips, self.test_crops),
                                         self.average) if views > 1 else None
            predicted = classifier(centre).argmax(dim=-1)
            single += int((predicted == labels).sum())
            multi += int(((predicted if averaged is None else averaged.argmax(dim=-1)) == labels).sum())
            samples += len(labels)
        if samples == 0:
            raise no_samples_error("FineTune.test_data", self.modality, absent, loader.left_out)
        return {"test_accuracy": single / samples, "test_accuracy_ci": wilson_interval(single / samples, samples),
                "multi_view_accuracy": multi / samples,
                "multi_view_accuracy_ci": wilson_interval(multi / samples, samples), "views": views,
                "view_shape": None if view_shape is None else list(view_shape),
                "test_samples": samples, "test_absent": absent, "test_left_out": loader.left_out}
