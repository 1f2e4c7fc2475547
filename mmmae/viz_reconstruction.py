"""Reconstruction figures of a training step, by the modality's tokenizer: frames (clips),
spectrograms (audio), signal plots per device (IMU), captions with the predicted tokens (text)."""

import torch
from matplotlib.figure import Figure

from mmmae.tokenizers.audio import AudioTokenizer
from mmmae.tokenizers.imu import IMUGraphTokenizer
from mmmae.tokenizers.text import TextTokenizer
from mmmae.types import ModalityOutput
from mmmae.viz import clip_reconstruction_figure
from mmmae.viz_audio import audio_reconstruction_figure
from mmmae.viz_imu import imu_reconstruction_figure
from mmmae.viz_text import text_reconstruction_figure

# The reconstruction figure of each tokenizer kind with its own drawing:
# (tokenizer, data, prediction, plan, sample, title) -> Figure.
RECONSTRUCTION_FIGURES = {AudioTokenizer: audio_reconstruction_figure, IMUGraphTokenizer: imu_reconstruction_figure,
                          TextTokenizer: text_reconstruction_figure}


def reconstruction_figure(tokenizer: torch.nn.Module, data, output: ModalityOutput, sample: int,
                          title: str) -> Figure | None:
    """Sample `sample` of one modality's batch `data` with its decoder's predictions
    (output.prediction); None when the modality has no prediction or no drawing."""
    if output.prediction is None:
        return None
    for kind, draw in RECONSTRUCTION_FIGURES.items():
        if isinstance(tokenizer, kind):
            return draw(tokenizer, data, output.prediction, output.plan, sample, title)
    drawable = getattr(tokenizer, "figure_image", None)
    if drawable is not None and drawable(data[sample:sample + 1].cpu()) is not None:
        return clip_reconstruction_figure(tokenizer, data, output.prediction, output.plan, sample, title)
    return None
