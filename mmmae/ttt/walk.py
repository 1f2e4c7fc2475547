"""The test-time training walk: for each stream item, masked-reconstruction steps on a window of
recent inputs, then the task head's prediction with the updated weights, beside the same model frozen."""

import copy
import dataclasses
from collections import deque
from collections.abc import Iterator

import torch
from torch import nn
from torch.utils.data import Dataset, default_collate

from mmmae.masking.rng import MaskRNG
from mmmae.model import MaskedAutoencoder
from mmmae.objectives.classification import Classification
from mmmae.objectives.objective_list import weight_at
from mmmae.optim import param_groups
from mmmae.train import mask_seed

MEMORIES = ("implicit", "reset")


@dataclasses.dataclass(frozen=True)
class WalkSettings:
    """window: W, the inputs each item's steps train on: items t-W+1..t with `include_current`
    (video-ttt: the current item's unlabelled input is in its window), else t-W..t-1 (only items
    already predicted); fewer at the start of the stream.
    steps: masked-reconstruction steps per item (video-ttt's ST_ITERS; 0 = the frozen model).
    memory: 'implicit' keeps weights and optimizer state from item to item; 'reset' restores the
    initial weights and a fresh optimizer before every item.
    lr, weight_decay, clip_grad: AdamW (decay on matrices only, `optim.param_groups`) and the
    gradient-norm clip (None: none). seed: the mask seed; step s of item t masks with
    `mask_seed(seed, t * steps + s)`, the same in both memories. trained_steps: the optimizer step
    the model was trained to; maskers and loss weights that follow the step (RatioCurriculum,
    CosineRamp) are taken there, where training left them."""

    window: int = 8
    steps: int = 1
    memory: str = "implicit"
    include_current: bool = True
    lr: float = 1e-4
    weight_decay: float = 0.05
    clip_grad: float | None = None
    seed: int = 0
    trained_steps: int = 0

    def __post_init__(self):
        if self.memory not in MEMORIES:
            raise ValueError(f"test_time_train.memory = {self.memory!r}: one of {MEMORIES}")
        if self.window < 1 or self.steps < 0 or self.lr <= 0 or self.weight_decay < 0:
            raise ValueError(f"test_time_train: need window >= 1, steps >= 0, lr > 0 and weight_decay >= 0; got "
                             f"window={self.window}, steps={self.steps}, lr={self.lr}, "
                             f"weight_decay={self.weight_decay}")
        if self.clip_grad is not None and self.clip_grad <= 0:
            raise ValueError(f"test_time_train.clip_grad = {self.clip_grad}: a positive norm, or None for no clip")


def task_index(model: MaskedAutoencoder, task: str | None) -> int:
    """The position in model.objectives of its Classification named `task` (`Classification.name`,
    e.g. 'video_label_classification'); None picks the only one."""
    heads = {o.name: i for i, o in enumerate(model.objectives) if isinstance(o, Classification)}
    if not heads:
        raise ValueError("the model has no task head: test-time training needs a Classification among "
                         "MaskedAutoencoder.objectives, trained with the masked objectives (gin/recipes/ttt_mae.gin)")
    if task is None and len(heads) > 1:
        raise ValueError(f"the model has several task heads {sorted(heads)}: choose one with test_time_train.task")
    if task is not None and task not in heads:
        raise ValueError(f"test_time_train.task = {task!r} is not a task head of the model; its heads: {sorted(heads)}")
    return heads[task] if task is not None else next(iter(heads.values()))


def masked_loss(model: MaskedAutoencoder, batch: dict, rng: MaskRNG) -> torch.Tensor:
    """The weighted sum of the model's objectives other than its task heads (Classification) on
    `batch`: the five steps of MaskedAutoencoder.forward, the full views only if those objectives need them."""
    objectives = [o for o in model.objectives if not isinstance(o, Classification)]
    if not objectives:
        raise ValueError("the model has no masked objective beside its task head: nothing to train at test time")
    tokens, plans = model.tokenize_and_mask(batch, rng)
    outputs = model.encode_visible(tokens, plans, batch)
    model.decode(outputs)
    if any(o.full_view_modalities for o in objectives):
        model.encode_full_views(outputs, batch)
    return sum(weight_at(o, rng.step) * o(outputs, batch)[0] for o in objectives)


def on_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def new_optimizer(model: nn.Module, settings: WalkSettings) -> torch.optim.Optimizer:
    return torch.optim.AdamW(param_groups(model, settings.weight_decay), lr=settings.lr)


@torch.no_grad()
def predict(model: MaskedAutoencoder, head: int, inputs: dict, device: torch.device) -> int:
    """The class the model's task head gives one item's inputs (unmasked, eval mode)."""
    model.eval()
    return int(model.objectives[head].predict(model, on_device(default_collate([inputs]), device)).argmax(-1)[0])


def walk(model: MaskedAutoencoder, stream: Dataset, head: int, settings: WalkSettings) -> Iterator[dict]:
    """Adapt `model` (in place) along `stream` and yield one record per item t:
    {item, label, drift (when the stream gives one), window [first, last] item trained on (None
    without steps), masked_loss (mean over the steps, None without), ttt_prediction,
    frozen_prediction, ttt_correct, frozen_correct}. The frozen model is a copy of `model` as given.

    Item t's label (the head's `label` key) is taken out when the item is read and is only
    compared with the predictions: no model call ever receives it. Both predictions of item t
    come after item t's steps.
    """
    label_key = model.objectives[head].label
    device = next(model.parameters()).device
    frozen = copy.deepcopy(model).eval()
    initial = copy.deepcopy(model.state_dict())
    optimizer = new_optimizer(model, settings)
    recent: deque[tuple[int, dict]] = deque(maxlen=settings.window)
    for t in range(len(stream)):
        inputs = dict(stream[t])
        if label_key not in inputs:
            raise ValueError(f"stream item {t} has no {label_key!r}, the label of the task head; its keys: "
                             f"{sorted(inputs)}")
        label = int(inputs.pop(label_key))
        if settings.memory == "reset":
            model.load_state_dict(initial)
            optimizer = new_optimizer(model, settings)
        if settings.include_current:
            recent.append((t, inputs))
        losses = []
        if settings.steps and recent:
            batch = on_device(default_collate([x for _, x in recent]), device)
            model.train()
            for s in range(settings.steps):
                rng = MaskRNG.seeded(mask_seed(settings.seed, t * settings.steps + s), device,
                                     step=settings.trained_steps)
                loss = masked_loss(model, batch, rng)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if settings.clip_grad is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), settings.clip_grad)
                optimizer.step()
                losses.append(float(loss.detach()))
        window = [recent[0][0], recent[-1][0]] if losses else None
        ttt, fixed = predict(model, head, inputs, device), predict(frozen, head, inputs, device)
        if not settings.include_current:
            recent.append((t, inputs))
        yield {"item": t, "label": label, **({"drift": float(inputs["drift"])} if "drift" in inputs else {}),
               "window": window, "masked_loss": sum(losses) / len(losses) if losses else None,
               "ttt_prediction": ttt, "frozen_prediction": fixed, "ttt_correct": ttt == label,
               "frozen_correct": fixed == label}
