"""Global distillation: a head on the student's pooled encoding predicts a teacher's pooled
embedding (VideoPrism stage 2's global target)."""

import gin
import torch
from torch import nn

from mmmae.objectives.presence import usable_samples
from mmmae.objectives.reconstruction import check_loss, distance
from mmmae.types import EmbeddingTarget, mean_tokens


@gin.configurable(module="mmmae")
class GlobalDistillation(nn.Module):
    """head(mean of outputs[modality].encoded over the tokens that took part) (B, E) against
    target(batch[modality]) (B, E), by `loss` ('cosine' default, 'mse', 'smooth_l1'; see
    objectives/reconstruction.distance), averaged over the samples that have the modality.

    target: an EmbeddingTarget (gin `@video/TeacherEmbedding()`), computed on the full input under
    no_grad. in_dim: the student's encoder width; head: Linear(in_dim, target.dim). The pooled
    visible encoding is what the probes read (mean-pooled encoder features), so the global term
    shapes it directly; VideoPrism pools its decoder's output instead (docs/targets.md).
    """

    full_view_modalities: tuple[str, ...] = ()  # encodes no full view (the Objective protocol)

    def __init__(self, modality: str = gin.REQUIRED, target: EmbeddingTarget = gin.REQUIRED,
                 in_dim: int = gin.REQUIRED, loss: str = "cosine", weight: float = 1.0, strict: bool = False):
        super().__init__()
        self.modality = modality
        self.target = target  # a plain attribute: its teacher stays out of the student's weights
        self.loss = check_loss("GlobalDistillation", loss)
        self.weight = weight
        self.strict = strict
        self.name = f"{modality}_global_distillation"
        self.head = nn.Linear(in_dim, target.dim)

    def forward(self, outputs: dict, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out = outputs[self.modality]
        usable, logs = usable_samples(self.name, [self.modality], outputs, batch, self.strict)
        prediction = self.head(mean_tokens(out.encoded, out.mask))
        per_sample = distance(self.loss, prediction, self.target(batch[self.modality]).to(prediction.device))
        weight = usable.float()
        loss = (per_sample * weight).sum() / weight.sum().clamp_min(1.0)
        return loss, {self.name: loss.detach(), **logs}
