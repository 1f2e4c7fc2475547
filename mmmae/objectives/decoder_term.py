"""A per-sample term a decoder returns (Decoded.terms), weighed as an objective: a VAE's KL divergence,
a quantiser's commitment loss."""

import gin
import torch

from mmmae.objectives.presence import usable_samples


@gin.configurable(module="mmmae")
class DecoderTerm:
    """The mean over usable samples of `term` (B,) from modality `modality`'s decoder.

    weight: a number or a schedule of the optimizer step (e.g. a KL warm-up, `@LinearRamp()`).
    Samples without the modality are skipped and counted (or an error with strict=True).
    """

    full_view_modalities: tuple[str, ...] = ()

    def __init__(self, modality: str = gin.REQUIRED, term: str = gin.REQUIRED, weight=1.0, strict: bool = False):
        self.modality, self.term, self.weight, self.strict = modality, term, weight, strict
        self.name = f"{modality}_{term}"

    def __call__(self, outputs: dict, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        terms = outputs[self.modality].decoder_terms
        if self.term not in terms:
            raise ValueError(f"DecoderTerm: the decoder of {self.modality!r} returns no term {self.term!r} "
                             f"(it returns {sorted(terms) or 'none'}): check DecoderTerm.term and "
                             f"{self.modality}/Modality.decoder")
        usable, logs = usable_samples(self.name, [self.modality], outputs, batch, self.strict)
        weight = usable.float()
        loss = (terms[self.term].float() * weight).sum() / weight.sum().clamp_min(1.0)
        return loss, {self.name: loss.detach(), **logs}
