"""The model's one list of objectives."""

from collections.abc import Iterator, Sequence

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
