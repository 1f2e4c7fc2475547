"""Masked video-text InfoNCE of TGM (Fan et al., ECCV 2024): L = L_MSE + L_NCE.

The video side is the encoder output of the MASKED clip (the visible tokens the
reconstruction already encoded, no extra encoder pass), mean-pooled and projected; the text
side is the frozen sentence embedding of the sample's caption.
"""

import hashlib
from collections.abc import Callable

import gin
import torch
import torch.nn.functional as F
from torch import nn

from mmmae.nn.sentence_encoder import FrozenSentenceEncoder, batch_captions
from mmmae.objectives.contrastive import TemperatureScaled, gather_across_processes, info_nce
from mmmae.objectives.presence import usable_samples
from mmmae.types import mean_tokens


def caption_ids(captions: list[str], device: torch.device) -> torch.Tensor:
    """(B,) int64 id per caption string, equal on every process (blake2b, not Python's salted hash)."""
    ids = [int.from_bytes(hashlib.blake2b(c.encode(), digest_size=8).digest(), "little", signed=True)
           for c in captions]
    return torch.tensor(ids, dtype=torch.int64, device=device)


@gin.configurable(module="mmmae")
class CaptionContrastive(TemperatureScaled):
    """InfoNCE between the pooled masked video and the frozen embedding of batch[caption_key].

    v_i = normalise(projection(mean of outputs[modality].encoded over its non-padding tokens)) (B, E);
    t_i = normalise(text_encoder(captions)) (B, E), frozen (None: FrozenSentenceEncoder(), E = 384).
    Rows: local samples; columns: the global batch (gathered across processes, with gradient on
    the video side). Local row i's positive is global column rank * B + i. symmetric averages
    video->text and text->video. A sample without the modality or with an empty caption loses
    its row and column and is counted in logs[f"{name}_skipped"]; `strict` raises instead.

    Identical captions in a batch (frequent on MovingDigits: 240 distinct captions) are false
    negatives: their clips are pushed apart although the captions cannot tell them apart.
    dedupe_captions=True removes, from each row, the columns of other samples with the same
    caption string (the positive stays); the paper describes plain batch InfoNCE (False).
    projection: the video head, shared with PatchCaptionScorer in TGM (gin/recipes/tgm.gin).
    """

    full_view_modalities: tuple[str, ...] = ()  # encodes no full view (the Objective protocol)

    def __init__(self, projection: nn.Module = gin.REQUIRED, modality: str = "video",
                 text_encoder: Callable | None = None, temperature: float = 0.07, learnable_temperature: bool = True,
                 symmetric: bool = True, weight: float = 1.0, strict: bool = False, dedupe_captions: bool = True,
                 caption_key: str = "caption"):
        super().__init__("CaptionContrastive", temperature, learnable_temperature)
        self.modality = modality
        self.name = f"caption_contrastive_{modality}"
        self.projection = projection
        self.text_encoder = FrozenSentenceEncoder() if text_encoder is None else text_encoder
        self.symmetric = symmetric
        self.weight = weight
        self.strict = strict
        self.dedupe_captions = dedupe_captions
        self.caption_key = caption_key

    def usable(self, outputs: dict, batch: dict, captions: list[str]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(B,) bool: samples with the modality and a non-empty caption, and the skipped count."""
        usable, _ = usable_samples(self.name, (self.modality,), outputs, batch, self.strict)
        has_caption = torch.tensor([bool(c.strip()) for c in captions], device=usable.device)
        if self.strict and not has_caption.all():
            rows = (~has_caption).nonzero().flatten()
            where = batch["index"][rows.to(batch["index"].device)] if "index" in batch else rows
            raise ValueError(f"{self.name}: samples {where.tolist()} have an empty batch[{self.caption_key!r}] "
                             "(set strict = False to skip such samples)")
        usable = usable & has_caption
        return usable, {f"{self.name}_skipped": (~usable).sum().float()}

    def forward(self, outputs: dict, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if self.modality not in outputs:
            raise KeyError(f"CaptionContrastive.modality = {self.modality!r} is not a modality of the model "
                           f"(it has {sorted(outputs)})")
        out = outputs[self.modality]
        captions = batch_captions(f"{self.name} (CaptionContrastive.caption_key = {self.caption_key!r})", batch,
                                  self.caption_key, out.encoded.shape[0])
        usable, skipped = self.usable(outputs, batch, captions)  # (B,)
        video = F.normalize(self.projection(mean_tokens(out.encoded, out.mask)).float(), dim=-1)  # (B, E)
        text = F.normalize(self.text_encoder(captions).to(video.device).float(), dim=-1)  # (B, E), no gradient
        if video.shape[-1] != text.shape[-1]:
            raise ValueError(f"{self.name}: the projection gives {video.shape[-1]}-d video embeddings but the text "
                             f"encoder {text.shape[-1]}-d ones (bind the head's out_dim to {text.shape[-1]})")
        # Every process gathers, whatever its own batch holds: the collectives must match.
        video_all, offset = gather_across_processes(video)
        text_all, _ = gather_across_processes(text)
        usable_all, _ = gather_across_processes(usable.long())
        ids = caption_ids(captions, video.device)
        ids_all, _ = gather_across_processes(ids)
        target = offset + torch.arange(video.shape[0], device=video.device)
        columns = usable_all.bool()[None, :].expand(len(target), -1)  # (B, W*B) candidate keys of each row
        if self.dedupe_captions:
            positive = torch.arange(columns.shape[1], device=video.device)[None, :] == target[:, None]
            columns = columns & ((ids[:, None] != ids_all[None, :]) | positive)
        scale = self.logit_scale()
        loss, accuracy = info_nce(video, text_all, scale, columns, target, usable)
        if self.symmetric:
            loss = (loss + info_nce(text, video_all, scale, columns, target, usable)[0]) / 2
        logs = {
            self.name: loss.detach(),
            f"{self.name}_accuracy": accuracy.detach(),
            f"{self.name}_temperature": (1 / scale).detach(),
            **skipped,
        }
        return loss, logs
