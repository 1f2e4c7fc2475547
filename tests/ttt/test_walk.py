"""The test-time training walk: what each item's steps train on, what the weights start from
(reset vs implicit memory), and that no prediction sees its label or comes before its steps."""

import copy
from pathlib import Path

import pytest
import torch

from mmmae.config import parse_config
from mmmae.data.moving_digits.dataset import MovingDigits
from mmmae.data.moving_digits.drift import DriftingStream
from mmmae.model import MaskedAutoencoder
from mmmae.ttt.walk import WalkSettings, task_index, walk

MICRO = str(Path(__file__).parents[1] / "fixtures" / "micro_overrides.gin")
ITEMS = 5


def micro_model(recipe: str = "recipes/ttt_mae.gin") -> MaskedAutoencoder:
    parse_config([recipe, MICRO])
    torch.manual_seed(0)
    return MaskedAutoencoder()


def stream(items: int = ITEMS) -> DriftingStream:
    return DriftingStream(MovingDigits(split="test", num_samples=items, frames=4, size=16, digit_size=8))


def states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def head_state(state: dict) -> dict:
    return {k: v for k, v in state.items() if k.startswith("objectives.")}


@pytest.fixture
def spy(monkeypatch):
    """Every model call in order: ('steps' | 'predict', which model, the items in the batch, its keys,
    a copy of the weights), through tokenize_and_mask (steps) and encode (the head's prediction)."""
    calls = []
    tokenize_and_mask, encode = MaskedAutoencoder.tokenize_and_mask, MaskedAutoencoder.encode

    def record(kind, model, batch):
        calls.append((kind, model, batch["index"].tolist(), set(batch), copy.deepcopy(model.state_dict())))

    def spied_steps(self, batch, rng):
        record("steps", self, batch)
        return tokenize_and_mask(self, batch, rng)

    def spied_encode(self, batch, modality):
        record("predict", self, batch)
        return encode(self, batch, modality)

    monkeypatch.setattr(MaskedAutoencoder, "tokenize_and_mask", spied_steps)
    monkeypatch.setattr(MaskedAutoencoder, "encode", spied_encode)
    return calls


@pytest.mark.parametrize("include_current", [True, False])
def test_steps_train_on_the_window_and_precede_predictions_that_never_see_a_label(spy, include_current):
    model, window, steps = micro_model(), 3, 2
    records = list(walk(model, stream(), task_index(model, None), WalkSettings(window, steps, "implicit",
                                                                               include_current, lr=1e-3)))
    expected = []
    for t in range(ITEMS):
        last = t if include_current else t - 1
        items = list(range(max(0, last - window + 1), last + 1))
        expected += [("steps", items)] * (steps if items else 0) + [("predict", [t]), ("predict", [t])]
        assert records[t]["window"] == ([items[0], items[-1]] if items else None)
    assert [(kind, items) for kind, _, items, _, _ in spy] == expected
    assert all("label" not in keys for _, _, _, keys, _ in spy)
    adapted = [m for kind, m, _, _, _ in spy if kind == "steps"]
    assert all(m is model for m in adapted)
    predicting = [m for kind, m, _, _, _ in spy if kind == "predict"]
    assert predicting[0::2] == [model] * ITEMS and all(m is not model for m in predicting[1::2])
    assert [r["label"] for r in records] == [int(stream()[t]["label"]) for t in range(ITEMS)]


def test_reset_starts_every_item_from_the_initial_weights(spy):
    model = micro_model()
    initial = copy.deepcopy(model.state_dict())
    list(walk(model, stream(), task_index(model, None), WalkSettings(window=2, steps=1, memory="reset", lr=1e-3)))
    starts = [state for kind, _, _, _, state in spy if kind == "steps"]
    assert len(starts) == ITEMS and all(states_equal(s, initial) for s in starts)
    assert not states_equal(model.state_dict(), initial)  # the steps did change the weights
    assert states_equal(head_state(model.state_dict()), head_state(initial))  # but never the task head


def test_implicit_memory_carries_the_weights_from_item_to_item(spy):
    model = micro_model()
    initial = copy.deepcopy(model.state_dict())
    after = [copy.deepcopy(model.state_dict()) for _ in walk(model, stream(), task_index(model, None),
                                                             WalkSettings(window=2, steps=1, lr=1e-3))]
    starts = [state for kind, _, _, _, state in spy if kind == "steps"]
    assert states_equal(starts[0], initial)
    for t in range(1, ITEMS):
        assert states_equal(starts[t], after[t - 1]) and not states_equal(after[t], after[t - 1])
    assert states_equal(head_state(after[-1]), head_state(initial))


def test_zero_steps_is_the_frozen_model(spy):
    model = micro_model()
    initial = copy.deepcopy(model.state_dict())
    records = list(walk(model, stream(), task_index(model, None), WalkSettings(window=2, steps=0)))
    assert all(r["ttt_prediction"] == r["frozen_prediction"] and r["masked_loss"] is None for r in records)
    assert states_equal(model.state_dict(), initial)
    assert [kind for kind, *_ in spy] == ["predict"] * 2 * ITEMS


def test_the_mask_seed_makes_the_walk_reproducible():
    runs = []
    for _ in range(2):
        model = micro_model()
        runs.append([r["masked_loss"] for r in walk(model, stream(), task_index(model, None),
                                                    WalkSettings(window=2, steps=1, lr=1e-3))])
    assert runs[0] == runs[1]


def test_a_model_without_a_task_head_or_with_another_name_is_refused():
    with pytest.raises(ValueError, match="no task head.*ttt_mae.gin"):
        task_index(micro_model("recipes/quickstart_video.gin"), None)
    with pytest.raises(ValueError, match="'digits' is not a task head.*video_label_classification"):
        task_index(micro_model(), "digits")


@pytest.mark.parametrize("kwargs, match", [
    ({"memory": "forget"}, "memory = 'forget'"), ({"window": 0}, "window >= 1"), ({"steps": -1}, "steps >= 0"),
    ({"lr": 0.0}, "lr > 0"), ({"clip_grad": 0.0}, "clip_grad"),
])
def test_bad_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        WalkSettings(**kwargs)


def test_a_stream_without_the_label_is_refused():
    model = micro_model()
    unlabelled = [{k: v for k, v in item.items() if k != "label"} for item in stream(2)]
    with pytest.raises(ValueError, match="stream item 0 has no 'label'"):
        next(walk(model, unlabelled, task_index(model, None), WalkSettings(window=1)))


def test_step_dependent_loss_weights_are_taken_where_training_left_them():
    """A ramped weight is 0 at step 0: at the model's trained step the masked steps do train."""
    parse_config(["recipes/ttt_mae.gin", MICRO],
                 ["CosineRamp.steps = 10", "video/Reconstruction.weight = @CosineRamp()"])
    torch.manual_seed(0)
    model = MaskedAutoencoder()
    head = task_index(model, None)
    at_start = [r["masked_loss"] for r in walk(copy.deepcopy(model), stream(2), head, WalkSettings(window=2))]
    trained = [r["masked_loss"] for r in walk(model, stream(2), head, WalkSettings(window=2, trained_steps=10))]
    assert at_start == [0.0, 0.0] and all(loss > 0 for loss in trained)
