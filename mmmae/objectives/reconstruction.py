"""Masked reconstruction: mean squared error over the predicted tokens."""

import gin
import torch
import torch.nn.functional as F

from mmmae.objectives.presence import usable_samples
from mmmae.types import gather_tokens


@gin.configurable(module="mmmae")
class Reconstruction:
    """MSE between a modality's predictions and its targets at plan.predict.

    Per-token mean over the P target values, then the mean over tokens weighted by
    plan.loss_weight (sum(w * l) / sum(w)), over the samples that have the modality; samples
    without it are skipped and counted (or an error with strict=True).
    """

    full_view_modalities: tuple[str, ...] = ()  # encodes no full view (the Objective protocol)

    def __init__(self, modality: str = gin.REQUIRED, weight: float = 1.0, strict: bool = False):
        self.modality = modality
        self.weight = weight
        self.strict = strict
        self.name = f"{modality}_reconstruction"

    def __call__(self, outputs: dict, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out = outputs[self.modality]
        if out.prediction is None:
            raise ValueError(f"{self.name}: modality {self.modality!r} is not decoded: give it a masker that hides "
                             f"tokens ({self.modality}/Modality.masker; none hides nothing) and a decoder "
                             f"({self.modality}/Modality.decoder) or a model-level MaskedAutoencoder.decoder")
        usable, logs = usable_samples(self.name, [self.modality], outputs, batch, self.strict)
        target = gather_tokens(out.tokens.target, out.plan.predict)
        per_token = F.mse_loss(out.prediction.float(), target.float(), reduction="none").mean(dim=-1)
        weight = torch.ones_like(per_token) if out.plan.loss_weight is None else out.plan.loss_weight.float()
        weight = weight * usable[:, None]
        loss = (per_token * weight).sum() / weight.sum().clamp_min(1e-12)
        return loss, {self.name: loss.detach(), **logs}
