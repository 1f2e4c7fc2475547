"""MovingDigits' text: the event's caption, "a seven moves quickly to the upper left", as token ids."""

from __future__ import annotations

import torch

from mmmae.data.moving_digits.events import DigitEvent
from mmmae.data.moving_digits.modality_renderers import ModalityRenderer, RenderSettings, Scene, register_renderer
from mmmae.tokenizers.text import encode_captions

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SPEED_WORDS = ("slowly", "steadily", "quickly")
# One phrase per direction class (0 right, counter-clockwise on screen).
DIRECTION_PHRASES = (
    "to the right",
    "to the upper right",
    "up",
    "to the upper left",
    "to the left",
    "to the lower left",
    "down",
    "to the lower right",
)


def speed_class(speed: float, min_speed: float, max_speed: float, classes: int) -> int:
    """The class 0..classes-1 of a mean speed: equal-width bins of [min_speed, max_speed], class c
    holding min_speed + c w <= speed < min_speed + (c + 1) w, w = (max_speed - min_speed) / classes.
    Speeds outside the range take the nearest end class (`sample_event` lowers a speed below
    min_speed where the path cannot otherwise fit); a zero-width range is all class 0."""
    if max_speed <= min_speed:
        return 0
    return min(max(int(classes * (speed - min_speed) / (max_speed - min_speed)), 0), classes - 1)


def speed_word(speed: float, min_speed: float, max_speed: float) -> str:
    """'slowly', 'steadily' or 'quickly' by thirds of [min_speed, max_speed] (clamped; 'steadily' if equal)."""
    if max_speed <= min_speed:
        return SPEED_WORDS[1]
    return SPEED_WORDS[speed_class(speed, min_speed, max_speed, len(SPEED_WORDS))]


def caption(event: DigitEvent, *, min_speed: float, max_speed: float) -> str:
    """'<a|an> <digit> moves <speed word> <direction phrase>' for ``event``'s class, mean speed and direction."""
    digit = DIGIT_WORDS[event.label]
    article = "an" if digit == "eight" else "a"  # the only digit word with a vowel sound ("a one")
    speed = speed_word(event.speed, min_speed, max_speed)
    return f"{article} {digit} moves {speed} {DIRECTION_PHRASES[event.direction]}"


def _render(scene: Scene, settings: RenderSettings) -> dict[str, str | torch.Tensor]:
    text = caption(scene.event, min_speed=settings.min_speed, max_speed=settings.max_speed)
    return {"caption": text, "text": encode_captions([text], settings.tokenizer, settings.text_length)[0]}


def _blank(settings: RenderSettings) -> dict[str, str | torch.Tensor]:
    """An empty caption and all pad ids (text_length,)."""
    return {"caption": "", "text": torch.full((settings.text_length,), settings.tokenizer.pad_token_id,
                                              dtype=torch.int64)}


register_renderer("text", ModalityRenderer(order=3, render=_render, blank=_blank))
