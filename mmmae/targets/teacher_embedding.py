"""A frozen teacher's pooled (global) embedding of a modality: VideoPrism's global target."""

import gin
import torch

from mmmae.eval.retrieval import pair_projection
from mmmae.targets.teacher import load_teacher
from mmmae.types import PairEmbedding


@gin.configurable(module="mmmae")
class TeacherEmbedding:
    """The teacher's (B, E) embedding of the full, unmasked batch entry of its `modality`.

    contrastive_with: None: its encoder's pooled features (mean over tokens, through its
    pool_norm when it has one), E = its width; a modality name: the embedding of the teacher's
    contrastive objective between `modality` and that one (a PairEmbedding, e.g. 'text' for the
    video-text space of a stage-1 model), unit vectors, E = that objective's projection width.
    Under no_grad; the teacher is shared with every other target naming the same source.
    """

    def __init__(self, teacher: str = gin.REQUIRED, modality: str = "video", contrastive_with: str | None = None):
        self.teacher = load_teacher(teacher)
        self.teacher.modality(modality, "TeacherEmbedding.modality")
        self.modality = modality
        self.space = None if contrastive_with is None else self._pair(teacher, modality, contrastive_with)
        encoder = self.teacher.model.encoder
        with torch.no_grad():
            probe = torch.zeros(1, 1, encoder.dim)
            self.dim = encoder.dim if self.space is None else self.space.embed(modality, probe).shape[-1]

    def _pair(self, teacher: str, modality: str, other: str) -> PairEmbedding:
        """The teacher's contrastive objective between `modality` and `other` (as retrieval finds it)."""
        if (objective := pair_projection(self.teacher.model, modality, other)) is not None:
            return objective
        pairs = [tuple(o.modalities) for o in self.teacher.model.objectives if isinstance(o, PairEmbedding)]
        raise ValueError(f"TeacherEmbedding.contrastive_with = {other!r}: the teacher {teacher!r} has no contrastive "
                         f"objective between {modality!r} and {other!r} (it has {pairs})")

    @torch.no_grad()
    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        """The modality's batch entry -> (B, E) float32."""
        x, valid, _ = self.teacher.encode(inputs, self.modality)
        if self.space is None:
            return self.teacher.model.encoder.pool(x, valid).float()
        return self.space.embed(self.modality, x, valid).float()
