"""Masked language modelling: cross-entropy of the decoder's logits against the hidden token ids."""

import gin
import torch
import torch.nn.functional as F


@gin.configurable(module="mmmae")
class MaskedLanguageModeling:
    """Cross-entropy between outputs[modality].prediction (B, Q, V) and the ids at plan.predict.

    Each predicted token counts with weight loss_weight (if any) * valid * present(sample); the loss is
    sum(w * ce) / sum(w), and 0 (still a function of the logits) when nothing counts. Samples whose
    modality is absent are skipped and counted, or with `strict` raise.
    """

    full_view_modalities: tuple[str, ...] = ()  # encodes no full view (the Objective protocol)

    def __init__(self, modality: str = "text", weight: float = 1.0, strict: bool = False):
        self.modality = modality
        self.weight = weight
        self.strict = strict
        self.name = f"{modality}_mlm"

    def __call__(self, outputs: dict, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out = outputs[self.modality]
        logits, predict = out.prediction.float(), out.plan.predict
        absent = ~out.present
        if self.strict and bool(absent.any()):
            index = batch["index"][absent.to(batch["index"].device)].tolist()
            raise ValueError(f"{self.name}: modality {self.modality!r} is absent for samples with index {index}")
        target = out.tokens.target.gather(1, predict)
        weight = (~absent)[:, None].float().expand_as(target)
        if out.plan.loss_weight is not None:
            weight = weight * out.plan.loss_weight
        if out.tokens.valid is not None:
            weight = weight * out.tokens.valid.gather(1, predict)
        per_token = F.cross_entropy(logits.transpose(1, 2), target, reduction="none")  # (B, Q)
        total = weight.sum().clamp_min(1e-12)
        loss = (per_token * weight).sum() / total
        accuracy = ((logits.argmax(dim=-1) == target).float() * weight).sum() / total
        logs = {self.name: loss.detach(), f"{self.name}_accuracy": accuracy.detach(),
                f"{self.name}_skipped": absent.sum().float()}
        return loss, logs
