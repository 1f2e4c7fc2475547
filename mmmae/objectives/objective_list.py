"""The model's one list of objectives."""

from collections.abc import Iterator, Sequence

import torch
from torch import nn

from mmmae.types import Objective


class ObjectiveList(nn.Module):
    """Every objective in its config order (iterate, index, len), each checked against the Objective
    protocol (mmmae/types.py). The ones with weights (nn.Modules) are registered as children
    '0', '1', ... in their order among those: the state-dict keys `objectives.<k>.…` that
    checkpoints and the zoo hold."""

    def __init__(self, objectives: Sequence[Objective]):
        super().__init__()
        for objective in objectives:
            if not isinstance(objective, Objective):
                lacking = [a for a in ("weight", "full_view_modalities", "__call__") if not hasattr(objective, a)]
                raise ValueError(f"MaskedAutoencoder.objectives: {objective!r} lacks {', '.join(lacking)}: an "
                                 "objective is called with (outputs, batch) and has a weight and its "
                                 "full_view_modalities (the Objective protocol, mmmae/types.py)")
        self.members = tuple(objectives)
        for rank, objective in enumerate(o for o in objectives if isinstance(o, nn.Module)):
            self.add_module(str(rank), objective)

    def __iter__(self) -> Iterator[Objective]:
        return iter(self.members)

    def __len__(self) -> int:
        return len(self.members)

    def __getitem__(self, index: int) -> Objective:
        return self.members[index]

    def weighted_sum(self, outputs: dict, batch: dict, step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """sum of weight_at(objective, step) * objective(outputs, batch), and every objective's logs
        (with '<name>_weight' for a scheduled weight)."""
        loss, logs = 0.0, {}
        for objective in self.members:
            value, objective_logs = objective(outputs, batch)
            weight = weight_at(objective, step)
            loss = loss + weight * value
            logs.update(objective_logs)
            if callable(objective.weight):
                logs[f"{getattr(objective, 'name', type(objective).__name__)}_weight"] = value.new_tensor(weight)
        return loss, logs


def weight_at(objective: Objective, step: int) -> float:
    """An objective's weight at optimizer step `step`: its `weight`, or `weight(step)` when the
    weight is a schedule (e.g. `@CosineRamp()`, mmmae/objectives/weight_ramp.py)."""
    if isinstance(objective.weight, type):
        raise ValueError(f"{type(objective).__name__}.weight is the class {objective.weight.__name__}, not a schedule: "
                         f"bind it with parentheses, e.g. `weight = @{objective.weight.__name__}()`")
    return objective.weight(step) if callable(objective.weight) else objective.weight
