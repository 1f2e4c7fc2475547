"""AdamW with decay only on weight matrices, a linear-warmup cosine schedule, lr scaling."""

from collections.abc import Sequence

import torch
from torch import nn
from transformers import get_cosine_with_min_lr_schedule_with_warmup

# Parameters MAE / VideoMAE exempt from weight decay besides norms and biases: mask and class
# tokens, and learned position tables (mmmae.nn.pos_embed: `table`, `spatial`, `temporal`).
NO_DECAY_NAMES = ("mask_token", "cls_token", "cls_embed", "table", "spatial", "temporal")


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups: weight decay on matrices, none on norms, biases, tokens and position tables."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        skip = param.ndim <= 1 or name.split(".")[-1] in NO_DECAY_NAMES
        (no_decay if skip else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def scaled_lr(base_lr: float, global_batch: int) -> float:
    """The linear scaling rule of MAE and VideoMAE: base_lr * global batch / 256."""
    return base_lr * global_batch / 256


def build_optimizer(
    model: nn.Module, lr: float, weight_decay: float, betas: Sequence[float], steps: int, warmup_steps: int,
    min_lr_ratio: float,
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """AdamW (torch's fused kernel: one pass over each parameter, CPU and CUDA) and a schedule
    that rises linearly for warmup_steps, then follows a cosine to min_lr_ratio * lr."""
    optimizer = torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=tuple(betas), fused=True)
    schedule = get_cosine_with_min_lr_schedule_with_warmup(
        optimizer, num_warmup_steps=warmup_steps, num_training_steps=steps, min_lr_rate=min_lr_ratio
    )
    return optimizer, schedule
