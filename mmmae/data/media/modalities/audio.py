"""MediaDataset's audio: the row's audio file (or the video's own track) over the clip's span."""

from __future__ import annotations

import torch

from mmmae.data.media.audio_reader import read_audio
from mmmae.data.media.errors import NoAudioTrack
from mmmae.data.media.modality_readers import ClipSpan, ModalityReader, ReadSettings, register_reader


def _read(row: dict, clip: ClipSpan, settings: ReadSettings) -> dict[str, torch.Tensor] | None:
    """(S,) float32 at settings.sample_rate; None for a video file's own track without sound."""
    try:
        audio = read_audio(row["audio"], clip.start, clip.start + clip.span, settings.sample_rate,
                           channels=settings.audio_channels)
    except NoAudioTrack:
        if row["audio"] != row.get("video"):  # a separate audio file must have audio
            raise
        return None  # the video's own track: a clip without sound
    return {"audio": audio}


def _blank(span: float, settings: ReadSettings) -> dict[str, torch.Tensor]:
    """Zeros (S,)."""
    return {"audio": torch.zeros(round(span * settings.sample_rate))}


register_reader("audio", ModalityReader(column="audio", read=_read, blank=_blank))
