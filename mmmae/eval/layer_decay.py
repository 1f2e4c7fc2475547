"""Layer-wise learning-rate decay (BEiT / VideoMAE fine-tuning): deeper layers learn faster."""

from mmmae.eval.classifier import Classifier
from mmmae.optim import NO_DECAY_NAMES

NO_WEIGHT_DECAY = (*NO_DECAY_NAMES, "embedding")  # the modality embedding, like VideoMAE's pos_embed


def layer_scale(layer: int, num_layers: int, decay: float) -> float:
    """decay ** (num_layers + 1 - layer): 1 for the head (layer num_layers + 1), decay ** (num_layers + 1)
    for the tokenizer (layer 0)."""
    return decay ** (num_layers + 1 - layer)


def layer_decay_groups(classifier: Classifier, lr: float, weight_decay: float, decay: float) -> list[dict]:
    """AdamW parameter groups, one per (layer, with or without weight decay), ordered by layer:
    {"params", "lr": lr * lr_scale, "lr_scale", "weight_decay", "layer"}. Norms, biases, mask
    tokens and the modality embedding get no weight decay; frozen parameters are left out."""
    groups: dict[tuple[int, bool], dict] = {}
    for name, param in classifier.named_parameters():
        if not param.requires_grad:
            continue
        layer = classifier.layer_id(name)
        decayed = param.ndim > 1 and name.split(".")[-1] not in NO_WEIGHT_DECAY
        if (layer, decayed) not in groups:
            scale = layer_scale(layer, classifier.num_layers, decay)
            groups[layer, decayed] = {"params": [], "lr": lr * scale, "lr_scale": scale,
                                      "weight_decay": weight_decay if decayed else 0.0, "layer": layer}
        groups[layer, decayed]["params"].append(param)
    return [groups[key] for key in sorted(groups)]
