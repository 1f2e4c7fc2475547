"""Masked reconstruction: a distance per predicted token (MSE by default) between predictions and targets."""

import gin
import torch
import torch.nn.functional as F

from mmmae.objectives.presence import usable_samples
from mmmae.types import gather_tokens

LOSSES = ("mse", "cosine", "smooth_l1")


def check_loss(owner: str, loss: str) -> str:
    """`loss` when it is one of LOSSES, else a ValueError naming the binding `owner.loss`."""
    if loss not in LOSSES:
        raise ValueError(f"{owner}.loss = {loss!r} is not one of {LOSSES}")
    return loss


def distance(loss: str, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(..., P) predictions and targets, in float32 -> (...,): 'mse' the mean squared error over P,
    'cosine' 1 - cos(prediction, target), 'smooth_l1' the mean smooth-L1 (beta 1) over P."""
    prediction, target = prediction.float(), target.float()
    if loss == "mse":
        return F.mse_loss(prediction, target, reduction="none").mean(dim=-1)
    if loss == "cosine":
        return 1 - F.cosine_similarity(prediction, target, dim=-1)
    return F.smooth_l1_loss(prediction, target, reduction="none").mean(dim=-1)


@gin.configurable(module="mmmae")
class Reconstruction:
    """A distance between a modality's predictions and its targets at plan.predict.

    loss: 'mse' (default), 'cosine' (1 - cos) or 'smooth_l1' per token (see `distance`), then the
    mean over tokens weighted by plan.loss_weight (sum(w * l) / sum(w); 0 on padding, Tokens.valid),
    over the samples that have the modality; samples without it are skipped and counted (or an
    error with strict=True).
    The targets are Tokens.target: the tokenizer's (normalised pixels), or Modality.target's
    (a teacher's tokens, mmmae/targets/); or the decoder's own (Decoded.target: the noise a
    diffusion decoder predicts).
    """

    full_view_modalities: tuple[str, ...] = ()  # encodes no full view (the Objective protocol)

    def __init__(self, modality: str = gin.REQUIRED, weight: float = 1.0, strict: bool = False, loss: str = "mse"):
        self.modality = modality
        self.weight = weight
        self.strict = strict
        self.loss = check_loss("Reconstruction", loss)
        self.name = f"{modality}_reconstruction"

    def __call__(self, outputs: dict, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out = outputs[self.modality]
        if out.prediction is None:
            raise ValueError(f"{self.name}: modality {self.modality!r} is not decoded: give it a masker that hides "
                             f"tokens ({self.modality}/Modality.masker; none hides nothing) and a decoder "
                             f"({self.modality}/Modality.decoder) or a model-level MaskedAutoencoder.decoder")
        usable, logs = usable_samples(self.name, [self.modality], outputs, batch, self.strict)
        target = out.prediction_target
        if target is None:
            target = gather_tokens(out.tokens.target, out.plan.predict)
        per_token = distance(self.loss, out.prediction, target)
        weight = torch.ones_like(per_token) if out.plan.loss_weight is None else out.plan.loss_weight.float()
        if out.tokens.valid is not None:  # padding is never a target, whatever the masker
            weight = weight * gather_tokens(out.tokens.valid, out.plan.predict).float()
        weight = weight * usable[:, None]
        loss = (per_token * weight).sum() / weight.sum().clamp_min(1e-12)
        return loss, {self.name: loss.detach(), **logs}
