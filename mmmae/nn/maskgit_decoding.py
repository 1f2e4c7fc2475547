"""MaskGIT's iterative parallel decoding of discrete tokens, on a masked code model's decoder."""

import math

import gin
import torch

from mmmae.nn.decoder import MaskTokenDecoder
from mmmae.types import MaskPlan, gather_tokens


def unmasking_schedule(total: int, steps: int) -> list[int]:
    """Tokens still unknown after each of at most `steps` iterations, from `total` unknown:
    floor(total · cos(π/2 · s / steps)) after iteration s, at least one fewer each iteration, 0 at the end."""
    if steps < 1:
        raise ValueError(f"MaskGIT decoding needs at least one step, got steps = {steps}")
    left, remaining = total, []
    while left > 0:
        s = len(remaining) + 1
        left = 0 if s >= steps else min(math.floor(total * math.cos(math.pi / 2 * s / steps)), left - 1)
        remaining.append(left)
    return remaining


def sample_codes(logits: torch.Tensor, temperature: float, generator: torch.Generator | None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (B, U, K) -> (codes (B, U) drawn from softmax(logits / temperature), or the argmax at
    temperature 0; their probability under softmax(logits) (B, U), the confidence)."""
    probs = logits.float().softmax(dim=-1)
    if temperature == 0:
        codes = probs.argmax(dim=-1)
    else:
        tempered = (logits.float() / temperature).softmax(dim=-1)
        codes = torch.multinomial(tempered.flatten(0, 1), 1, generator=generator).view(logits.shape[:2])
    return codes, probs.gather(-1, codes[..., None]).squeeze(-1)


@gin.configurable(module="mmmae")
class MaskGITDecoder(MaskTokenDecoder):
    """A MaskTokenDecoder whose out_dim is the codebook size (logits (B, Q, K) at plan.predict, for
    MaskedLanguageModeling), with MaskGIT's iterative decoding as `fill`."""

    def fill(self, model: torch.nn.Module, batch: dict, modality: str, plan: MaskPlan, *,
             generator: torch.Generator | None = None, steps: int = 8, temperature: float = 1.0) -> torch.Tensor:
        """The codes filled at plan.predict, (B, Q, 1) float (see fill_codes)."""
        codes = self.fill_codes(model, batch, modality, plan, generator=generator, steps=steps,
                                temperature=temperature)
        return codes.gather(1, plan.predict)[..., None].float()

    @torch.no_grad()
    def fill_codes(self, model: torch.nn.Module, batch: dict, modality: str, plan: MaskPlan, *,
                   generator: torch.Generator | None = None, steps: int = 8, temperature: float = 1.0
                   ) -> torch.Tensor:
        """Every code (B, N) int64: batch[modality]'s own codes, with those at plan.predict filled in
        `steps` iterations from the codes at plan.keep: each iteration encodes the known codes with
        `model`, samples every unknown one at `temperature`, keeps the most confident and leaves the
        rest unknown by the cosine schedule (unmasking_schedule). Codes outside plan.predict never
        change. The modality's tokenizer must embed codes (`embed_codes`, VideoCodes); only this
        modality is encoded."""
        source = model.modalities[modality]
        if not hasattr(source.tokenizer, "embed_codes"):
            raise ValueError(f"MaskGITDecoder.fill re-embeds codes, which {modality}/Modality.tokenizer "
                             f"({type(source.tokenizer).__name__}) cannot: use VideoCodes")
        tokens = source.tokenize(batch[modality], with_target=False)
        codes, known, unknown = tokens.target.clone(), plan.keep, plan.predict
        for left in unmasking_schedule(unknown.shape[1], steps):
            embed = source.tokenizer.embed_codes(codes, tokens.grid) + source.embedding
            encoded, _, cls = model.run_encoder({modality: gather_tokens(embed, known)}, {modality: None},
                                                {modality: None})
            logits = self(encoded[modality], tokens.grid, MaskPlan(known, unknown), cls=cls.get(modality))
            drawn, confidence = sample_codes(logits, temperature, generator)
            order = confidence.argsort(dim=1, descending=True)
            settled, rest = order[:, :unknown.shape[1] - left], order[:, unknown.shape[1] - left:]
            codes.scatter_(1, unknown.gather(1, settled), drawn.gather(1, settled))
            known = torch.cat([known, unknown.gather(1, settled)], dim=1).sort(dim=1).values
            unknown = unknown.gather(1, rest).sort(dim=1).values
        return codes
