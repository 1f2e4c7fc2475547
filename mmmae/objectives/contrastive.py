"""InfoNCE between two modalities' mean-pooled encodings, with negatives from every process."""

import math
from collections.abc import Sequence

import gin
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.distributed.nn.functional import all_gather

from mmmae.nn.heads import ProjectionHead
from mmmae.nn.running_standardize import RunningStandardize
from mmmae.objectives.presence import usable_samples
from mmmae.types import mean_tokens

MAX_LOGIT_SCALE = 100.0
VIEWS = ("masked", "full")


def gather_across_processes(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(B, ...) local -> ((W*B, ...) global in rank order, offset of the local rows).

    Autograd-aware: the backward sends each process the gradient that every process's loss
    put on its rows. Every process must call it (with equal B) on every step.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x, 0
    return torch.cat(all_gather(x), dim=0), dist.get_rank() * x.shape[0]


class TemperatureScaled(nn.Module):
    """Base of the InfoNCE objectives: CLIP's logit scale 1 / temperature, a learnable log
    (`log_logit_scale`) or, fixed, a non-persistent buffer (the gin config rebuilds it); at most 100."""

    def __init__(self, owner: str, temperature: float, learnable: bool):
        super().__init__()
        if not 1 / MAX_LOGIT_SCALE <= temperature:
            raise ValueError(f"{owner}.temperature must be at least {1 / MAX_LOGIT_SCALE:g} (the logit scale "
                             f"is clamped at {MAX_LOGIT_SCALE:g}), got {temperature}")
        log_logit_scale = torch.tensor(math.log(1 / temperature))
        if learnable:
            self.log_logit_scale = nn.Parameter(log_logit_scale)
        else:  # a buffer follows the model's device
            self.register_buffer("log_logit_scale", log_logit_scale, persistent=False)

    def logit_scale(self) -> torch.Tensor:
        """1 / temperature, a scalar tensor, at most 100."""
        return self.log_logit_scale.exp().clamp(max=MAX_LOGIT_SCALE)


def info_nce(query: torch.Tensor, keys: torch.Tensor, scale: torch.Tensor, candidates: torch.Tensor,
             target: torch.Tensor, usable: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One direction of InfoNCE -> (loss, top-1 accuracy), both means over the usable rows.

    query (B, E) local rows, keys (W*B, E) global columns, scale the logit scale, candidates
    (B or 1, W*B) bool: the columns each row may score; target (B,) the global column of each
    row's positive; usable (B,) bool: rows that count.
    """
    with torch.autocast(query.device.type, enabled=False):  # logits up to 100 need float32
        logits = scale.float() * query.float() @ keys.float().T  # (B, W*B)
    # A finite fill, not -inf: a dropped row whose columns are all dropped stays finite (no NaN).
    logits = logits.masked_fill(~candidates, torch.finfo(logits.dtype).min)
    row_weight = usable.float() / usable.sum().clamp_min(1)
    ce_target = target.masked_fill(~usable, -100)  # cross_entropy's ignore_index: dropped rows add 0
    loss = (F.cross_entropy(logits, ce_target, reduction="none") * row_weight).sum()
    accuracy = ((logits.argmax(dim=-1) == target).float() * row_weight).sum()
    return loss, accuracy


@gin.configurable(module="mmmae")
class Contrastive(TemperatureScaled):
    """InfoNCE (CLIP / CAV-MAE) between pooled encodings of two modalities.

    pooled_m = mean of outputs[m].encoded (B, K, D) over its non-padding tokens -> head -> L2-normalise (B, E).
    Rows: the local samples of the query modality; columns: the key modality of the global
    batch (all-gathered with gradient). Local row i's positive is global column rank * B + i.
    A sample missing either modality loses its row and its column; `strict` raises instead.
    The loss is the mean over usable local rows; symmetric averages a->b and b->a.

    view: 'masked' pools the encoding of the visible tokens (CAV-MAE, TGM: no extra pass);
    'full' pools every token of each modality encoded alone, in a second encoder pass
    (ModalityOutput.full) that costs about one unmasked forward and backward per modality. Use
    it when a masked view often hides what the two modalities share (a small object in a
    large frame under tube masking).
    standardize: pooled features pass through a RunningStandardize per modality before the
    head, so a component common to every sample (mean-pooled ViT features have one) does not
    swamp the cosine; its statistics follow the usable rows of each training batch.

    CAV-MAE: projection=None, temperature=0.05, learnable_temperature=False, symmetric=False,
    weight=0.01. The learnable temperature is CLIP's: a log logit scale, clamped at 100.
    """

    def __init__(self, modalities: Sequence[str] = gin.REQUIRED, in_dim: int = gin.REQUIRED, proj_dim: int = 128,
                 projection: str | None = "linear", temperature: float = 0.07, learnable_temperature: bool = True,
                 symmetric: bool = True, weight: float = 1.0, strict: bool = False, view: str = "masked",
                 standardize: bool = False):
        modalities = tuple(modalities)
        if view not in VIEWS:
            raise ValueError(f"Contrastive.view must be one of {VIEWS}, got {view!r}")
        if len(modalities) != 2 or modalities[0] == modalities[1]:
            raise ValueError(f"Contrastive.modalities must be two different modalities, got {modalities}")
        if not temperature > 0:
            raise ValueError(f"Contrastive.temperature must be positive, got {temperature}")
        super().__init__("Contrastive", temperature, learnable_temperature)
        self.modalities = modalities
        self.name = f"contrastive_{modalities[0]}_{modalities[1]}"
        self.symmetric = symmetric
        self.weight = weight
        self.strict = strict
        self.view = view
        self.heads = nn.ModuleDict({
            m: ProjectionHead(in_dim, proj_dim, kind=projection) if projection else nn.Identity() for m in modalities
        })
        self.standardizers = nn.ModuleDict({m: RunningStandardize(in_dim) for m in modalities}) if standardize else None

    @property
    def full_view_modalities(self) -> tuple[str, ...]:
        """The modalities whose full, unmasked encoding the model must pass (ModalityOutput.full)."""
        return self.modalities if self.view == "full" else ()

    def embed(self, modality: str, encoded: torch.Tensor, mask: torch.Tensor | None = None,
              rows: torch.Tensor | None = None) -> torch.Tensor:
        """Encoder output (B, K, D), mean-pooled over the tokens where mask (B, K) is True (all if
        None), standardised (`standardize`; in training the statistics take in the `rows` (B,)
        bool, all if None) -> L2-normalised embedding (B, proj_dim), or (B, D) without a head."""
        pooled = mean_tokens(encoded, mask)
        if self.standardizers is not None:
            pooled = self.standardizers[modality](pooled, rows)
        return F.normalize(self.heads[modality](pooled).float(), dim=-1)

    def view_of(self, output) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The (encoded (B, K, D), mask (B, K)) this objective pools from one ModalityOutput."""
        if self.view == "masked":
            return output.encoded, output.mask
        if output.full is None:
            raise ValueError(f"{self.name}: view 'full' needs the model's full-view pass (ModalityOutput.full); "
                             "build the model with this objective in MaskedAutoencoder.objectives")
        return output.full, output.full_mask

    def forward(self, outputs: dict, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        a, b = self.modalities
        usable, skipped = usable_samples(self.name, self.modalities, outputs, batch, self.strict)  # (B,)
        za, zb = (self.embed(m, *self.view_of(outputs[m]), rows=usable) for m in (a, b))  # (B, E) float32
        # Every process gathers, whatever its own batch holds: the collectives must match.
        zb_all, offset = gather_across_processes(zb)
        usable_all, _ = gather_across_processes(usable.long())
        target = offset + torch.arange(za.shape[0], device=za.device)
        candidates = usable_all.bool()[None]
        scale = self.logit_scale()
        loss, accuracy = info_nce(za, zb_all, scale, candidates, target, usable)
        if self.symmetric:
            loss = (loss + info_nce(zb, gather_across_processes(za)[0], scale, candidates, target, usable)[0]) / 2
        logs = {
            self.name: loss.detach(),
            f"{self.name}_accuracy": accuracy.detach(),
            f"{self.name}_temperature": (1 / scale).detach(),
            **skipped,
        }
        return loss, logs

