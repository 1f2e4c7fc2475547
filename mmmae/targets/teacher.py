"""A frozen teacher: a pretrained mmmae model run on the full input, never trained, never saved
with the student, one per source however many targets name it."""

import weakref
from pathlib import Path

import torch

from mmmae.model import MaskedAutoencoder
from mmmae.zoo.pretrained import frozen_model

# Teachers in use, by their frozen model (zoo.pretrained.frozen_model, one per weights file): targets
# naming one source share it.
_TEACHERS: "weakref.WeakValueDictionary[int, Teacher]" = weakref.WeakValueDictionary()


class Teacher:
    """A pretrained model (a zoo name, a run or pretrained folder, a Hub repo id; see
    mmmae.zoo.pretrained.locate) in eval mode with requires_grad False.

    Not an nn.Module and held by no module: it stays out of the student's parameters, state dict,
    optimizer and device moves; `encode` moves it to the input's device when first needed.
    """

    def __init__(self, source: str, model: MaskedAutoencoder):
        self.source = source
        self.model = model.eval().requires_grad_(False)
        self._last: tuple | None = None  # (inputs, its version, modality, blocks, result) of the last encode

    def __deepcopy__(self, memo: dict) -> "Teacher":
        """Itself: a copy of the student (the trainer's random_init copy) shares its frozen teacher."""
        return self

    @property
    def dim(self) -> int:
        """D, the width of the teacher's tokens."""
        return self.model.encoder.dim

    def modality(self, name: str, binding: str):
        """The teacher's Modality `name`; a ValueError naming `binding` when it has none."""
        if name not in self.model.modalities:
            raise ValueError(f"{binding} = {name!r}: the teacher {self.source!r} has the modalities "
                             f"{list(self.model.modalities)}")
        return self.model.modalities[name]

    @torch.no_grad()
    def encode(self, inputs: torch.Tensor, modality: str, blocks: int | None = None
               ) -> tuple[torch.Tensor, torch.Tensor | None, tuple[int, ...]]:
        """Every token of `modality`'s batch entry, unmasked and alone, after the first `blocks`
        encoder blocks (None: all, through the final norm): ((B, N, D), valid (B, N) or None, grid).
        The last call's result is reused for the same, unmodified inputs tensor (the tokens and the
        pooled embedding of one batch cost one teacher pass)."""
        last = self._last
        if last is not None and last[0] is inputs and last[1:4] == (inputs._version, modality, blocks):
            return last[4]
        if next(self.model.parameters()).device != inputs.device:
            self.model.to(inputs.device)
        source = self.model.modalities[modality]
        tokens = source.tokenize(inputs, with_target=False)
        parts, valid = source.with_cls(tokens.embed, tokens.valid)
        encoded, _ = self.model.encoder({modality: parts}, {modality: None}, {modality: valid}, blocks=blocks)
        x = encoded[modality] if source.cls_token is None else encoded[modality][:, 1:]
        result = x, tokens.valid, tokens.grid
        self._last = (inputs, inputs._version, modality, blocks, result)
        return result


def load_teacher(source: str | Path) -> Teacher:
    """The frozen teacher of `source` (zoo.pretrained.frozen_model: built from its config.gin with the
    student's gin config kept and the global RNG untouched); shared with every other target naming
    the same weights."""
    model = frozen_model(source)
    teacher = _TEACHERS.get(id(model))
    if teacher is None:
        teacher = _TEACHERS[id(model)] = Teacher(str(source), model)
    return teacher
