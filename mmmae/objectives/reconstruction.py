"""Masked reconstruction: mean squared error over the predicted tokens."""

import gin
import torch

from mmmae.types import gather_tokens


@gin.configurable(module="mmmae")
class Reconstruction:
    """MSE between a modality's predictions and its targets at plan.predict.

    Per-token mean over the P target values, then the mean over tokens weighted by
    plan.loss_weight (sum(w * l) / sum(w)); a plain mean when loss_weight is None.
    """

    def __init__(self, modality: str = gin.REQUIRED, weight: float = 1.0):
        self.modality = modality
        self.weight = weight
        self.name = f"{modality}_reconstruction"

    def __call__(self, outputs: dict, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out = outputs[self.modality]
        target = gather_tokens(out.tokens.target, out.plan.predict)
        per_token = (out.prediction.float() - target.float()).pow(2).mean(dim=-1)
        weight = out.plan.loss_weight
        loss = per_token.mean() if weight is None else (per_token * weight).sum() / weight.sum().clamp_min(1e-12)
        return loss, {self.name: loss.detach()}
