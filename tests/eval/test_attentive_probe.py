"""Attentive probe: the pooler ignores padding, the probe learns what mean pooling cannot see."""

import pytest
import torch

from mmmae.eval.attentive_probe import AttentivePooler, AttentiveProbe, encoded_tokens
from mmmae.eval.linear_probe import LinearProbe
from tests.eval.fake_model import FakeModality, FakeModel
from tests.eval.flaky import FlakyDataset
from tests.float32_bound import rounding_bound


def test_pooler_never_attends_to_padding():
    torch.manual_seed(0)
    pooler = AttentivePooler(dim=4, heads=2, queries=2).eval()
    x, valid = torch.randn(3, 5, 4), torch.tensor([[True] * 5, [True, True, False, False, False], [True] + [False] * 4])
    changed = x.clone()
    changed[~valid] = 100.0
    reference = pooler(x, valid)  # padding's weight is exactly 0; the pooler's sums of at most 5 tokens, width 4
    assert torch.allclose(pooler(changed, valid), reference, atol=rounding_bound(reference, 3, 5), rtol=0)
    assert not torch.allclose(pooler(x), pooler(changed))


def which_token_samples(n: int, seed: int) -> list[dict]:
    """Two tokens of width 4: slots 0-1 hold (+1, -1) in one token and (-1, +1) in the other,
    slots 2-3 code the token's position; the label says which token holds (+1, -1). Both classes
    have the same mean token, so mean pooling cannot tell them apart; attention to the token with
    +1 in slot 0 reads its position code."""
    generator = torch.Generator().manual_seed(seed)
    samples = []
    for i in range(n):
        label = i % 2
        first, second = torch.tensor([1.0, -1.0]), torch.tensor([-1.0, 1.0])
        a, b = (first, second) if label == 0 else (second, first)
        tokens = torch.zeros(2, 4)
        tokens[0, :2], tokens[1, :2] = a, b
        tokens[0, 2:], tokens[1, 2:] = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])  # position codes
        samples.append({"video": tokens + 0.05 * torch.randn(2, 4, generator=generator), "label": label})
    return samples


def test_learns_a_task_mean_pooling_cannot_separate():
    train, test = which_token_samples(64, seed=0), which_token_samples(32, seed=1)
    model = FakeModel({"video": FakeModality()}).train()
    linear = LinearProbe(train_data=train, test_data=test)(model)
    assert linear["test_accuracy"] < 0.8  # the means of both classes coincide
    probe = AttentiveProbe(train_data=train, test_data=test, heads=2, epochs=60, batch_size=16, lr=1e-2)
    result = probe(model)
    assert result["test_accuracy"] == result["train_accuracy"] == 1.0
    assert result["train_samples"] == 64 and result["test_samples"] == 32 and result["epochs"] == 60
    assert model.training  # the model is put back in the mode it was in
    assert probe(model) == result  # seeded: the same result again


def test_tokens_of_shorter_batches_are_padded_and_absent_samples_counted():
    samples = [{"text": torch.ones(3 if i < 2 else 5, 2) * (i + 1), "text_present": i != 1, "label": i}
               for i in range(4)]
    tokens, valid, labels, absent, left_out = encoded_tokens(FakeModel({"text": FakeModality()}), samples, "text",
                                                             "label", 2)
    assert tokens.shape == (3, 5, 2) and absent == 1 and left_out == 0 and labels.tolist() == [0, 2, 3]
    assert valid.tolist() == [[True] * 3 + [False] * 2, [True] * 5, [True] * 5]
    assert torch.equal(tokens[0, :3], torch.ones(3, 2)) and torch.equal(tokens[0, 3:], torch.zeros(2, 2))


def test_unreadable_samples_are_left_out_once_and_counted():
    samples = [{"text": torch.ones(3 if i < 4 else 5, 2) * (i + 1), "label": i} for i in range(6)]
    tokens, valid, labels, absent, left_out = encoded_tokens(
        FakeModel({"text": FakeModality()}), FlakyDataset(samples, unreadable={1, 2, 3, 5}), "text", "label", 2)
    assert labels.tolist() == [0, 4] and (absent, left_out) == (0, 4)
    assert torch.equal(tokens[:, 0, 0], torch.tensor([1.0, 5.0])) and valid.tolist() == [[True] * 3 + [False] * 2,
                                                                                          [True] * 5]
    train = FlakyDataset(which_token_samples(24, seed=0), unreadable={0, 5, 6, 7, 23})
    test = FlakyDataset(which_token_samples(12, seed=1), unreadable={2})
    model = FakeModel({"video": FakeModality()})
    probe = {"heads": 2, "epochs": 3, "batch_size": 4}
    result = AttentiveProbe(train_data=train, test_data=test, **probe)(model)
    readable = AttentiveProbe(train_data=train.readable(), test_data=test.readable(), **probe)(model)
    assert result == {**readable, "train_left_out": 5, "test_left_out": 1}
    assert (result["train_samples"], result["test_samples"]) == (19, 11)


def padded_text(samples: list[dict]) -> list[dict]:
    """The tokens as a padded modality: two all-zero padding tokens appended."""
    return [{"text": torch.cat([s["video"], torch.zeros(2, 4)]), "label": s["label"]} for s in samples]


def test_padded_modality_trains_on_its_valid_tokens():
    train, test = padded_text(which_token_samples(64, 0)), padded_text(which_token_samples(16, 1))
    result = AttentiveProbe(train_data=train, test_data=test, modality="text", heads=2, epochs=60, batch_size=16,
                            lr=1e-2)(FakeModel({"text": FakeModality(padded=True)}))
    assert result["test_accuracy"] == 1.0


def test_errors_name_the_setting_and_the_split():
    data = which_token_samples(4, 0)
    model = FakeModel({"video": FakeModality()})
    with pytest.raises(ValueError, match="AttentiveProbe.heads = 3 does not divide the encoder width 4"):
        AttentiveProbe(train_data=data, test_data=data, heads=3)(model)
    with pytest.raises(ValueError, match="epochs = 0"):
        AttentiveProbe(train_data=data, test_data=data, epochs=0)
    absent = [dict(s, video_present=False) for s in data]
    with pytest.raises(ValueError, match="AttentiveProbe.test_data: no sample has the modality 'video'"):
        AttentiveProbe(train_data=data, test_data=absent, heads=2)(model)
