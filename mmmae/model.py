"""The composed masked model: modalities -> shared encoder -> decoders -> objectives."""

from collections.abc import Callable, Sequence

import gin
import torch
from torch import nn

from mmmae.masking.none import NoMasking
from mmmae.masking.rng import MaskRNG
from mmmae.nn.blocks import init_weights
from mmmae.objectives.objective_list import ObjectiveList
from mmmae.types import (
    BindingProblem,
    Decoded,
    Masker,
    MaskPlan,
    ModalityOutput,
    ModelOutput,
    Objective,
    Target,
    Tokenizer,
    Tokens,
    gather_tokens,
    presence,
)


@gin.configurable(module="mmmae")
class Modality(nn.Module):
    """One input stream: the batch key `name`, its tokenizer, its masker and its decoder.

    masker: None hides nothing (NoMasking): the modality is only encoded, and builds no decoder.
    `decoder` is a factory (gin: `@video/MaskTokenDecoder`, no parentheses) called with the
    tokenizer's width and target size, or None when the modality is only encoded or a
    model-level decoder (`MaskedAutoencoder.decoder`) decodes it. A learned modality
    embedding is added to every token.
    cls_token: a learned class token `cls_token` (1, 1, D) (MAE, MAE-ST, AudioMAE; its position
    folded in) put before this modality's kept tokens in the encoder and taken out after it:
    ModalityOutput.cls, and the decoder's `cls` argument (MaskTokenDecoder.cls_token).
    target: where Tokens.target comes from (mmmae/targets/, e.g. `@video/TeacherTokens()`), or None
    for the tokenizer's own (normalised pixels); the decoder predicts `target_dim` values a token.
    """

    def __init__(self, name: str, tokenizer: Tokenizer, masker: Masker | None = None, decoder: Callable | None = None,
                 cls_token: bool = False, target: Target | None = None):
        super().__init__()
        self.name = name
        self.tokenizer = tokenizer
        self.masker = NoMasking() if masker is None else masker
        self.target = target  # not a submodule: a teacher's weights stay out of the student's
        hides_tokens = not isinstance(self.masker, NoMasking)
        self.decoder = decoder(in_dim=tokenizer.dim, out_dim=self.target_dim) if decoder and hides_tokens else None
        self.embedding = nn.Parameter(nn.init.trunc_normal_(torch.empty(1, 1, tokenizer.dim), std=0.02))
        if cls_token:
            self.cls_token = nn.Parameter(nn.init.trunc_normal_(torch.empty(1, 1, tokenizer.dim), std=0.02))
        else:
            self.cls_token = None

    @property
    def target_dim(self) -> int:
        """P, the values a decoder predicts per token: the target's dim, else the tokenizer's."""
        return self.tokenizer.target_dim if self.target is None else self.target.dim

    def with_cls(self, tokens: torch.Tensor, valid: torch.Tensor | None
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """tokens (B, K, D), valid (B, K) or None -> with the class token first, (B, 1 + K, D)."""
        if self.cls_token is None:
            return tokens, valid
        cls = self.cls_token.to(tokens.dtype).expand(tokens.shape[0], -1, -1)
        if valid is not None:
            valid = torch.cat([torch.ones_like(valid[:, :1]), valid], dim=1)
        return torch.cat([cls, tokens], dim=1), valid

    def mask(self, tokens: Tokens, batch: dict, rng: MaskRNG) -> MaskPlan:
        """The masker's plan; a masker that cannot use the batch (a missing side channel, a ratio
        that leaves nothing visible) raises a BindingProblem naming the modality and its masker binding."""
        try:
            return self.masker(tokens, batch, rng)
        except (KeyError, ValueError) as error:
            message = error.args[0] if error.args else repr(error)
            raise BindingProblem(f"modality {self.name!r}: {message}",
                                 [("masker chosen in", f"{self.name}/Modality.masker")]) from error

    def tokenize(self, inputs, with_target: bool = True) -> Tokens:
        """Tokens of this modality's batch entry, their target from `target` when it is set and
        with_target (encoding alone needs none); a bad input raises a BindingProblem naming the
        modality (and the tokenizer's patch binding, when the patch does not fit)."""
        try:
            tokens = self.tokenizer(inputs)
        except ValueError as error:
            patch = f"{self.name}/{type(self.tokenizer).__name__}.patch"
            raise BindingProblem(f"modality {self.name!r}: {error}",
                                 [("patch set in", patch)] if "patch" in str(error) else []) from error
        if self.target is not None and with_target:
            tokens.target = self.target(inputs, tokens)
        tokens.embed = tokens.embed + self.embedding.to(tokens.embed.dtype)
        return tokens


@gin.configurable(module="mmmae")
class MaskedAutoencoder(nn.Module):
    """Tokenize and mask every modality, encode the visible tokens together, decode, sum the objectives.

    encoder: factory called with the modality names (gin `@Encoder`). decoder: None (each
    Modality's own decoder) or a factory called with the modalities (`@SharedDecoder`,
    `@JointDecoder`) that decodes all of them; then no modality may have its own. A modality in
    some objective's `full_view_modalities` is also encoded unmasked and alone, in a second
    encoder pass (ModalityOutput.full): e.g. `Contrastive.view = 'full'`.
    """

    def __init__(self, modalities: Sequence[Modality] = gin.REQUIRED, encoder: Callable = gin.REQUIRED,
                 objectives: Sequence[Objective] = gin.REQUIRED, decoder: Callable | None = None):
        super().__init__()
        self.modalities = nn.ModuleDict({m.name: m for m in modalities})
        own = [m for m, modality in self.modalities.items() if modality.decoder is not None]
        if decoder and own:
            raise BindingProblem(
                f"MaskedAutoencoder.decoder decodes every modality, but {own} also have their own decoder, which "
                f"would be built and never trained: bind {' and '.join(f'{m}/Modality.decoder = None' for m in own)}",
                [("model decoder set in", "MaskedAutoencoder.decoder"),
                 *((f"{m}'s decoder set in", f"{m}/Modality.decoder") for m in own)])
        self.encoder = encoder(modalities=list(self.modalities))
        self.decoder = decoder(modalities=dict(self.modalities)) if decoder else None
        self.objectives = ObjectiveList(objectives)
        self.full_views = sorted({m for objective in self.objectives for m in objective.full_view_modalities})
        for objective in self.objectives:
            read = [getattr(objective, "modality", None), *getattr(objective, "modalities", ())]
            unknown = [m for m in dict.fromkeys((*read, *objective.full_view_modalities))
                       if isinstance(m, str) and m not in self.modalities]
            if unknown:
                raise ValueError(f"MaskedAutoencoder.objectives: {type(objective).__name__} reads {unknown}, which "
                                 f"the model does not have (its modalities: {list(self.modalities)})")
        self.apply(init_weights)

    def forward(self, batch: dict, rng: MaskRNG) -> ModelOutput:
        tokens, plans = self.tokenize_and_mask(batch, rng)
        outputs = self.encode_visible(tokens, plans, batch)
        self.decode(outputs)
        self.encode_full_views(outputs, batch)
        return self.sum_objectives(outputs, batch, rng.step)

    def tokenize_and_mask(self, batch: dict, rng: MaskRNG) -> tuple[dict[str, Tokens], dict[str, MaskPlan]]:
        """Every modality's tokens (B, N, D), then every modality's plan (keep (B, K), predict (B, Q))."""
        tokens = {m: modality.tokenize(batch[m]) for m, modality in self.modalities.items()}
        plans = {m: modality.mask(tokens[m], batch, rng) for m, modality in self.modalities.items()}
        return tokens, plans

    def encode_visible(self, tokens: dict[str, Tokens], plans: dict[str, MaskPlan], batch: dict
                       ) -> dict[str, ModalityOutput]:
        """The kept tokens of all modalities through the encoder together: outputs, not yet decoded."""
        present = {m: presence(batch, m, t.embed) for m, t in tokens.items()}
        valid = {m: None if t.valid is None else torch.gather(t.valid, 1, plans[m].keep) for m, t in tokens.items()}
        encoded, taking_part, cls = self.run_encoder(
            {m: gather_tokens(t.embed, plans[m].keep) for m, t in tokens.items()}, given(batch, present), valid)
        return {m: ModalityOutput(tokens[m], plans[m], encoded[m], None, present[m], taking_part[m], cls.get(m))
                for m in tokens}

    def decode(self, outputs: dict[str, ModalityOutput]) -> None:
        """Each decoded modality's prediction (B, Q, P) at plan.predict, by the model-level decoder
        or the modality's own (given the target at plan.predict when it `takes_target`); a Decoded
        answer also sets the output's prediction_target and decoder_terms."""
        if self.decoder is not None:
            encoded, tokens = {m: o.encoded for m, o in outputs.items()}, {m: o.tokens for m, o in outputs.items()}
            plans, present = {m: o.plan for m, o in outputs.items()}, {m: o.present for m, o in outputs.items()}
            predictions = self.decoder(encoded, tokens, plans, present)
        else:
            predictions = {m: modality.decoder(outputs[m].encoded, outputs[m].tokens.grid, outputs[m].plan,
                                               **decoder_extras(modality.decoder, outputs[m]))
                           for m, modality in self.modalities.items() if modality.decoder is not None}
        for m, prediction in predictions.items():
            if isinstance(prediction, Decoded):
                outputs[m].prediction_target, outputs[m].decoder_terms = prediction.target, prediction.terms
                prediction = prediction.prediction
            outputs[m].prediction = prediction

    def encode_full_views(self, outputs: dict[str, ModalityOutput], batch: dict) -> None:
        """ModalityOutput.full (B, N, D) and full_mask of the modalities the objectives need whole:
        each alone, as a joint pass would let one modality see the other."""
        for m in self.full_views:
            tokens = outputs[m].tokens
            full, full_mask, _ = self.run_encoder({m: tokens.embed}, given(batch, {m: outputs[m].present}),
                                                  {m: tokens.valid}, drop_tokens=False)
            outputs[m].full, outputs[m].full_mask = full[m], full_mask[m]

    def sum_objectives(self, outputs: dict[str, ModalityOutput], batch: dict, step: int = 0) -> ModelOutput:
        """The objectives' sum weighted at optimizer step `step`, with every objective's logs and
        the total as 'loss'."""
        loss, logs = self.objectives.weighted_sum(outputs, batch, step)
        logs["loss"] = loss
        return ModelOutput(loss, detached(logs), outputs)

    def run_encoder(self, parts: dict[str, torch.Tensor], present: dict[str, torch.Tensor | None],
                    valid: dict[str, torch.Tensor | None], drop_tokens: bool = True
                    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """The encoder (see Encoder.forward) with each modality's class token put first and taken
        out again: (encoded {m: (B, K, D)}, taking part {m: (B, K)}, class outputs {m: (B, D)})."""
        with_cls = {m: self.modalities[m].cls_token is not None for m in parts}
        parts, valid = dict(parts), dict(valid)
        for m in parts:
            parts[m], valid[m] = self.modalities[m].with_cls(parts[m], valid.get(m))
        encoded, taking_part = self.encoder(parts, present, valid, drop_tokens=drop_tokens)
        cls = {m: encoded[m][:, 0] for m in encoded if with_cls[m]}
        encoded = {m: x[:, 1:] if with_cls[m] else x for m, x in encoded.items()}
        taking_part = {m: x[:, 1:] if with_cls[m] else x for m, x in taking_part.items()}
        return encoded, taking_part, cls

    def encode(self, batch: dict, modality: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """All tokens of one modality, unmasked, encoded alone: ((B, N, D), valid (B, N) bool or None).
        A class token (Modality.cls_token) takes part but is not returned."""
        tokens = self.modalities[modality].tokenize(batch[modality], with_target=False)
        encoded, _, _ = self.run_encoder({modality: tokens.embed}, {modality: None}, {modality: tokens.valid})
        return encoded[modality], tokens.valid

    @torch.no_grad()
    def features(self, batch: dict, modality: str) -> torch.Tensor:
        """Encoder features of one modality, mean-pooled over its non-padding tokens (and through
        the encoder's pool_norm when it has one): (B, D)."""
        return self.encoder.pool(*self.encode(batch, modality))


def decoder_extras(decoder: nn.Module, output: ModalityOutput) -> dict[str, torch.Tensor]:
    """A modality decoder's keyword inputs beyond (encoded, grid, plan): the encoded class token
    `cls` when there is one, the target at plan.predict `target` when the decoder takes_target."""
    extras = {} if output.cls is None else {"cls": output.cls}
    if getattr(decoder, "takes_target", False):
        extras["target"] = gather_tokens(output.tokens.target, output.plan.predict)
    return extras


def given(batch: dict, present: dict[str, torch.Tensor]) -> dict[str, torch.Tensor | None]:
    """The encoder's presence argument: present (B,) where the batch says which samples have the
    modality (batch[f"{m}_present"]), None where all have it."""
    return {m: p if f"{m}_present" in batch else None for m, p in present.items()}


def detached(logs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The logs, detached, in float32: every one a view of one new buffer. Inductor folds
    `0 + 1 * value` and `detach` away, and a loss returned beside a detached alias of itself lost
    its gradient (pytorch/pytorch#194760)."""
    return dict(zip(logs, torch.stack([value.detach().float() for value in logs.values()]).unbind()))
