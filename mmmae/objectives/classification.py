"""A supervised task head trained beside the masked objectives (a Y-shaped model: test-time
training's task head, CDFSL-V's supervised source term)."""

import gin
import torch
import torch.nn.functional as F
from torch import nn

from mmmae.objectives.presence import usable_samples
from mmmae.types import mean_tokens

VIEWS = ("masked", "full")


@gin.configurable(module="mmmae")
class Classification(nn.Module):
    """Cross-entropy of head(pooled encoding of `modality`) (B, num_classes) against batch[label] (B,).

    view: 'masked' pools the visible tokens of this step's masked pass (no extra encoder pass);
    'full' pools every token, encoded alone and unmasked (ModalityOutput.full), as the head is
    used at prediction time (`predict`). Samples whose label is negative (unlabelled, e.g. a
    target domain's clips) or that lack the modality take no part; the loss is the mean over the rest.
    """

    def __init__(self, modality: str = gin.REQUIRED, num_classes: int = gin.REQUIRED, in_dim: int = gin.REQUIRED,
                 label: str = "label", view: str = "full", weight: float = 1.0, label_smoothing: float = 0.0):
        super().__init__()
        if view not in VIEWS:
            raise ValueError(f"Classification.view must be one of {VIEWS}, got {view!r}")
        if num_classes < 2:
            raise ValueError(f"Classification.num_classes = {num_classes}: a classifier needs at least 2 classes")
        self.modality, self.label, self.view, self.weight = modality, label, view, weight
        self.label_smoothing = label_smoothing
        self.name = f"{modality}_{label}_classification"
        self.head = nn.Linear(in_dim, num_classes)

    @property
    def full_view_modalities(self) -> tuple[str, ...]:
        return (self.modality,) if self.view == "full" else ()

    def predict(self, model: nn.Module, batch: dict) -> torch.Tensor:
        """Logits (B, num_classes) of the model's unmasked, mean-pooled encoding of the modality."""
        encoded, valid = model.encode(batch, self.modality)
        return self.head(mean_tokens(encoded, valid))

    def forward(self, outputs: dict, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out = outputs[self.modality]
        if self.label not in batch:
            raise KeyError(f"{self.name}: the batch has no {self.label!r} (keys: {sorted(batch)}); bind "
                           "Classification.label to a label the dataset gives")
        encoded, mask = (out.full, out.full_mask) if self.view == "full" else (out.encoded, out.mask)
        present, logs = usable_samples(self.name, [self.modality], outputs, batch, strict=False)
        labels = batch[self.label].long().to(encoded.device)
        usable = present & (labels >= 0)
        logits = self.head(mean_tokens(encoded, mask)).float()
        per_sample = F.cross_entropy(logits, labels.clamp_min(0), reduction="none",
                                     label_smoothing=self.label_smoothing)
        weight = usable.float()
        loss = (per_sample * weight).sum() / weight.sum().clamp_min(1.0)
        accuracy = ((logits.argmax(-1) == labels).float() * weight).sum() / weight.sum().clamp_min(1.0)
        return loss, {self.name: loss.detach(), f"{self.name}_accuracy": accuracy.detach(),
                      f"{self.name}_labelled": weight.sum().detach(), **logs}
