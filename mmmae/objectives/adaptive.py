"""AdaMAE's sampling loss: REINFORCE on the reconstruction error of the masked tokens."""

import gin
import torch

from mmmae.objectives.presence import usable_samples
from mmmae.types import gather_tokens


@gin.configurable(module="mmmae")
class AdaptiveMaskingLoss:
    """L_s = -mean over samples of mean over predicted tokens i of log p_i * stop_grad(error_i).

    log p (B, N) is the sampler's plan.aux["log_prob"] (masking.adaptive.AdaptiveMasking);
    error_i is the per-token MSE of Reconstruction (mean over the P target values), against the
    decoder's own target when it gives one (ModalityOutput.prediction_target). Its
    gradient raises p where the error is high, so the sampler learns to show the tokens the
    decoder finds hard (AdaMAE: L = L_r + 1e-4 * L_s). Samples without the modality are
    skipped and counted (or an error with strict=True).
    """

    full_view_modalities: tuple[str, ...] = ()  # encodes no full view (the Objective protocol)

    def __init__(self, modality: str = "video", weight: float = 1e-4, strict: bool = False):
        self.modality = modality
        self.weight = weight
        self.strict = strict
        self.name = f"{modality}_adaptive_masking"

    def __call__(self, outputs: dict, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out = outputs[self.modality]
        if "log_prob" not in out.plan.aux:
            raise ValueError(
                f"{self.name}: AdaptiveMaskingLoss needs the log-probabilities of a learnable masker "
                f"(plan.aux['log_prob']), but the masker of {self.modality!r} gave aux keys {sorted(out.plan.aux)}; "
                f"bind {self.modality}/Modality.masker = @{self.modality}/AdaptiveMasking()"
            )
        usable, logs = usable_samples(self.name, [self.modality], outputs, batch, self.strict)
        target = out.prediction_target
        if target is None:
            target = gather_tokens(out.tokens.target, out.plan.predict)
        error = (out.prediction.detach().float() - target.float()).pow(2).mean(dim=-1)
        log_prob = torch.gather(out.plan.aux["log_prob"], 1, out.plan.predict)
        per_sample = -(log_prob * error).mean(dim=1)
        loss = (per_sample * usable).sum() / usable.sum().clamp_min(1)
        return loss, {self.name: loss.detach(), **logs}
