"""MediaDataset's text: the row's caption (layout column 'caption') as token ids."""

from __future__ import annotations

import torch

from mmmae.data.media.modality_readers import ClipSpan, ModalityReader, ReadSettings, register_reader
from mmmae.tokenizers.text import encode_captions


def _read(row: dict, clip: ClipSpan, settings: ReadSettings) -> dict[str, str | torch.Tensor]:
    """caption (str) and text (text_length,) int64 ids; the caption is the whole row's."""
    text = str(row["caption"])
    return {"caption": text, "text": encode_captions([text], settings.tokenizer, settings.text_length)[0]}


def _blank(span: float, settings: ReadSettings) -> dict[str, str | torch.Tensor]:
    """An empty caption and all pad ids (text_length,)."""
    return {"caption": "", "text": torch.full((settings.text_length,), settings.tokenizer.pad_token_id,
                                              dtype=torch.int64)}


register_reader("text", ModalityReader(column="caption", read=_read, blank=_blank))
