"""The composed masked model: modalities -> shared encoder -> decoders -> objectives."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import gin
import torch
from torch import nn

from mmmae.config import binding_location
from mmmae.masking.rng import MaskRNG
from mmmae.nn.blocks import init_weights
from mmmae.types import MaskPlan, Tokens, gather_tokens, presence


@gin.configurable(module="mmmae")
class Modality(nn.Module):
    """One input stream: the batch key `name`, its tokenizer, its masker and its decoder.

    `decoder` is a factory (gin: `@video/MaskTokenDecoder`, no parentheses) called with the
    tokenizer's width and target size, or None when the modality is only encoded or a
    model-level decoder (`MaskedAutoencoder.decoder`) decodes it. A learned modality
    embedding is added to every token.
    cls_token: a learned class token `cls_token` (1, 1, D) (MAE, MAE-ST, AudioMAE; its position
    folded in) put before this modality's kept tokens in the encoder and taken out after it:
    ModalityOutput.cls, and the decoder's `cls` argument (MaskTokenDecoder.cls_token).
    """

    def __init__(self, name: str, tokenizer: nn.Module, masker: Callable, decoder: Callable | None = None,
                 cls_token: bool = False):
        super().__init__()
        self.name = name
        self.tokenizer = tokenizer
        self.masker = masker
        self.decoder = decoder(in_dim=tokenizer.dim, out_dim=tokenizer.target_dim) if decoder else None
        self.embedding = nn.Parameter(nn.init.trunc_normal_(torch.empty(1, 1, tokenizer.dim), std=0.02))
        if cls_token:
            self.cls_token = nn.Parameter(nn.init.trunc_normal_(torch.empty(1, 1, tokenizer.dim), std=0.02))
        else:
            self.cls_token = None

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
        """The masker's plan; a masker that cannot use the batch (a missing side channel, a
        ratio that leaves nothing visible) names the modality and the gin line that chose it."""
        try:
            return self.masker(tokens, batch, rng)
        except (KeyError, ValueError) as error:
            message = error.args[0] if error.args else repr(error)
            where = binding_location(rf"({self.name}/)?Modality\.masker\s*=")
            chosen = f" (masker chosen in {where})" if where else ""
            raise ValueError(f"modality {self.name!r}: {message}{chosen}") from error

    def tokenize(self, inputs) -> Tokens:
        """Tokens of this modality's batch entry; a bad input names the modality (and the gin line
        that set the tokenizer's patch, when the patch does not fit)."""
        try:
            tokens = self.tokenizer(inputs)
        except ValueError as error:
            patch = binding_location(rf"({self.name}/)?{type(self.tokenizer).__name__}\.patch\s*=")
            where = f" (patch set in {patch})" if patch and "patch" in str(error) else ""
            raise ValueError(f"modality {self.name!r}: {error}{where}") from error
        tokens.embed = tokens.embed + self.embedding.to(tokens.embed.dtype)
        return tokens


@dataclass
class ModalityOutput:
    tokens: Tokens
    plan: MaskPlan
    encoded: torch.Tensor  # (B, K, D) at plan.keep
    prediction: torch.Tensor | None  # (B, Q, P) at plan.predict
    present: torch.Tensor  # (B,) bool
    mask: torch.Tensor | None = None  # (B, K) bool: encoded tokens that took part (not padding, absent or dropped)
    cls: torch.Tensor | None = None  # (B, D) the encoded class token (Modality.cls_token), else None
    full: torch.Tensor | None = None  # (B, N, D) every token encoded alone (an objective's full_view_modalities)
    full_mask: torch.Tensor | None = None  # (B, N) bool: the full view's tokens that took part


@dataclass
class ModelOutput:
    loss: torch.Tensor
    logs: dict[str, torch.Tensor]
    outputs: dict[str, ModalityOutput]


@gin.configurable(module="mmmae")
class MaskedAutoencoder(nn.Module):
    """Tokenize and mask every modality, encode the visible tokens together, decode, sum the objectives.

    encoder: factory called with the modality names (gin `@Encoder`). decoder: None (each
    Modality's own decoder) or a factory called with the modalities (`@SharedDecoder`,
    `@JointDecoder`) that decodes all of them. A modality in some objective's
    `full_view_modalities` is also encoded unmasked and alone, in a second encoder pass
    (ModalityOutput.full): e.g. `Contrastive.view = 'full'`.
    """

    def __init__(self, modalities: Sequence[Modality] = gin.REQUIRED, encoder: Callable = gin.REQUIRED,
                 objectives: Sequence[Callable] = gin.REQUIRED, decoder: Callable | None = None):
        super().__init__()
        self.modalities = nn.ModuleDict({m.name: m for m in modalities})
        self.encoder = encoder(modalities=list(self.modalities))
        self.decoder = decoder(modalities=dict(self.modalities)) if decoder else None
        self.objectives = nn.ModuleList([o for o in objectives if isinstance(o, nn.Module)])
        self.losses = list(objectives)
        self.full_views = sorted({m for o in self.losses for m in getattr(o, "full_view_modalities", ())})
        unknown = [m for m in self.full_views if m not in self.modalities]
        if unknown:
            raise ValueError(f"MaskedAutoencoder.objectives ask for full views of {unknown}, which are not among "
                             f"the modalities {list(self.modalities)}")
        self.apply(init_weights)

    def forward(self, batch: dict, rng: MaskRNG) -> ModelOutput:
        tokens = {m: modality.tokenize(batch[m]) for m, modality in self.modalities.items()}
        plans = {m: modality.mask(tokens[m], batch, rng) for m, modality in self.modalities.items()}
        present = {m: presence(batch, m, tokens[m].embed) for m in tokens}
        given = {m: present[m] if f"{m}_present" in batch else None for m in tokens}  # None: all have m
        valid = {m: None if t.valid is None else torch.gather(t.valid, 1, plans[m].keep) for m, t in tokens.items()}
        encoded, taking_part, cls = self.run_encoder(
            {m: gather_tokens(tokens[m].embed, plans[m].keep) for m in tokens}, given, valid)
        if self.decoder is not None:
            predictions = self.decoder(encoded, tokens, plans, present)
        else:
            predictions = {m: modality.decoder(encoded[m], tokens[m].grid, plans[m],
                                               **({"cls": cls[m]} if m in cls else {}))
                           for m, modality in self.modalities.items() if modality.decoder is not None}
        outputs = {m: ModalityOutput(tokens[m], plans[m], encoded[m], predictions.get(m), present[m], taking_part[m],
                                     cls.get(m))
                   for m in tokens}
        for m in self.full_views:  # each alone: a joint pass would let one modality see the other
            full, full_mask, _ = self.run_encoder({m: tokens[m].embed}, {m: given[m]}, {m: tokens[m].valid},
                                                  drop_tokens=False)
            outputs[m].full, outputs[m].full_mask = full[m], full_mask[m]
        loss, logs = 0.0, {}
        for objective in self.losses:
            value, objective_logs = objective(outputs, batch)
            loss = loss + objective.weight * value
            logs.update(objective_logs)
        logs["loss"] = loss
        # Every log a view of one new buffer: inductor folds `0 + 1 * value` and `detach` away, and a
        # loss returned beside a detached alias of itself lost its gradient (pytorch/pytorch#194760).
        logs = dict(zip(logs, torch.stack([value.detach().float() for value in logs.values()]).unbind()))
        return ModelOutput(loss, logs, outputs)

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
        tokens = self.modalities[modality].tokenize(batch[modality])
        encoded, _, _ = self.run_encoder({modality: tokens.embed}, {modality: None}, {modality: tokens.valid})
        return encoded[modality], tokens.valid

    @torch.no_grad()
    def features(self, batch: dict, modality: str) -> torch.Tensor:
        """Encoder features of one modality, mean-pooled over its non-padding tokens (and through
        the encoder's pool_norm when it has one): (B, D)."""
        return self.encoder.pool(*self.encode(batch, modality))
