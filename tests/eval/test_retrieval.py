"""Cross-modal retrieval: recall@k with ties, pairing, absent samples, the contrastive projection."""

import pytest
import torch
from torch import nn

import mmmae.eval.retrieval as retrieval
from mmmae.eval.retrieval import Retrieval, recall_at_k
from mmmae.objectives.contrastive import Contrastive
from tests.eval.fake_model import FakeModality, FakeModel
from tests.eval.flaky import FlakyDataset

# Rows are queries, columns keys, the diagonal the correct answers.
SIMILARITY = torch.tensor([
    [0.9, 0.1, 0.0, 0.2],  # correct key on top: rank 1
    [0.8, 0.5, 0.2, 0.6],  # two keys above: rank 3
    [0.3, 0.3, 0.3, 0.3],  # all tied: rank uniform on 1..4
    [0.1, 0.7, 0.4, 0.4],  # one above, one tied: rank 2 or 3
])


def test_recall_against_a_hand_example_with_ties():
    # queries @ eye.T is the similarity matrix itself
    recall = recall_at_k(SIMILARITY, torch.eye(4), ks=(1, 2, 3, 4))
    expected = {"R@1": (1 + 0 + 1 / 4 + 0) / 4, "R@2": (1 + 0 + 2 / 4 + 1 / 2) / 4,
                "R@3": (1 + 1 + 3 / 4 + 1) / 4, "R@4": 1.0}
    assert recall == pytest.approx(expected)


def test_recall_is_the_same_scored_in_chunks(monkeypatch):
    queries, keys = torch.randn(7, 3), torch.randn(7, 3)
    whole = recall_at_k(queries, keys, ks=(1, 2, 5))
    monkeypatch.setattr(retrieval, "QUERY_CHUNK", 2)
    assert recall_at_k(queries, keys, ks=(1, 2, 5)) == whole


def paired_samples(n: int, generator: torch.Generator) -> list[dict]:
    """video, audio and imu of each sample are the same random tokens: a perfect pairing."""
    samples = []
    for i in range(n):
        x = torch.randn(3, 4, generator=generator)
        samples.append({"video": x, "audio": x.clone(), "imu": {"wrist": x[:2].clone(), "ankle": x[2:].clone()},
                        "index": i})
    return samples


def fake_model(objectives=()) -> FakeModel:
    return FakeModel({m: FakeModality() for m in ("video", "audio", "imu")}, objectives)


def test_identical_embeddings_retrieve_perfectly_in_both_directions():
    data = paired_samples(10, torch.Generator().manual_seed(0))
    result = Retrieval(data=data, pairs=[["video", "audio"], ["video", "imu"]], batch_size=4)(fake_model())
    assert set(result) == {"video-audio", "video-imu"}
    for a, b in (("video", "audio"), ("video", "imu")):
        pair = result[f"{a}-{b}"]
        assert pair[f"{a}->{b}"] == {"R@1": 1.0, "R@5": 1.0} and pair[f"{b}->{a}"] == {"R@1": 1.0, "R@5": 1.0}
        assert pair["modalities"] == [a, b] and pair["num_samples"] == 10 and pair["absent"] == 0
        assert pair["left_out"] == 0
        assert pair["chance"] == pytest.approx({"R@1": 0.1, "R@5": 0.5})
        assert pair["embedding"] == "mean_pooled"


def test_collapsed_embeddings_score_chance():
    data = [{"video": torch.ones(2, 3), "audio": torch.ones(2, 3)} for _ in range(8)]
    result = Retrieval(data=data, pairs=[["video", "audio"]])(fake_model())["video-audio"]
    assert result["video->audio"] == pytest.approx(result["chance"]) == {"R@1": 1 / 8, "R@5": 5 / 8}


def test_samples_lacking_a_modality_are_left_out():
    generator = torch.Generator().manual_seed(1)
    data = paired_samples(9, generator)
    for i in (2, 5, 6):  # absent audio that equals another sample's video would steal its rank if counted
        data[i]["audio"] = data[0]["video"].clone()
    for i, sample in enumerate(data):
        sample["audio_present"] = i not in (2, 5, 6)
    result = Retrieval(data=data, pairs=[["audio", "video"]], batch_size=4)(fake_model())["audio-video"]
    assert result["num_samples"] == 6 and result["absent"] == 3
    assert result["audio->video"]["R@1"] == result["video->audio"]["R@1"] == 1.0
    assert result["chance"] == pytest.approx({"R@1": 1 / 6, "R@5": 5 / 6})


def test_unreadable_samples_are_left_out_once_and_counted():
    data = FlakyDataset(paired_samples(12, torch.Generator().manual_seed(2)), unreadable={0, 4, 5, 6, 7, 11})
    for i in (1, 3):  # absent audio equal to another sample's video would steal its rank if counted
        data.samples[i]["audio"] = data.samples[2]["video"].clone()
    for i, sample in enumerate(data.samples):
        sample["audio_present"] = i not in (1, 3)
    pairs = [["video", "audio"], ["imu", "video"]]
    result = Retrieval(data=data, pairs=pairs, batch_size=4)(fake_model())
    readable = Retrieval(data=data.readable(), pairs=pairs, batch_size=4)(fake_model())
    assert result == {key: {**pair, "left_out": 6} for key, pair in readable.items()}
    assert result["video-audio"]["num_samples"] == 4 and result["video-audio"]["absent"] == 2
    assert result["imu-video"]["num_samples"] == 6 and result["imu-video"]["video->imu"]["R@1"] == 1.0


def test_uses_the_contrastive_projection_of_the_pair_in_either_order():
    contrastive = Contrastive(modalities=["audio", "video"], in_dim=4, proj_dim=3)
    for parameter in contrastive.heads.parameters():  # a collapsed projection: retrieval through it is at chance
        nn.init.zeros_(parameter)
    data = paired_samples(10, torch.Generator().manual_seed(2))
    result = Retrieval(data=data, pairs=[["video", "audio"], ["video", "imu"]])(fake_model([contrastive]))
    assert result["video-audio"]["embedding"] == "contrastive_audio_video"
    assert result["video-audio"]["video->audio"] == pytest.approx({"R@1": 0.1, "R@5": 0.5})
    assert result["video-imu"]["embedding"] == "mean_pooled" and result["video-imu"]["video->imu"]["R@1"] == 1.0


def test_projection_embeddings_are_what_retrieval_scores():
    torch.manual_seed(0)
    contrastive = Contrastive(modalities=["video", "audio"], in_dim=4, proj_dim=3)
    data = [{"video": torch.randn(3, 4), "audio": torch.randn(3, 4)} for _ in range(12)]
    model = fake_model([contrastive])
    result = Retrieval(data=data, pairs=[["video", "audio"]], ks=(1, 3))(model)["video-audio"]
    with torch.no_grad():
        za, zb = (contrastive.embed(m, torch.stack([d[m] for d in data])) for m in ("video", "audio"))
    assert result["video->audio"] == recall_at_k(za, zb, ks=(1, 3))
    assert result["audio->video"] == recall_at_k(zb, za, ks=(1, 3))


def test_encodes_each_modality_once_per_batch():
    model = fake_model()
    Retrieval(data=paired_samples(4, torch.Generator().manual_seed(3)), pairs=[["video", "audio"], ["video", "imu"]],
              batch_size=4)(model)
    assert sorted(model.encoded) == ["audio", "imu", "video"]


@pytest.mark.parametrize("pairs, ks, message", [
    ([["video", "video"]], (1,), "two different modalities"),
    ([["video", "audio", "imu"]], (1,), "two different modalities"),
    ([], (1,), "pairs is empty"),
    ([["video", "audio"]], (0, 5), "ks must be positive"),
])
def test_bad_configuration_fails_at_construction(pairs, ks, message):
    with pytest.raises(ValueError, match=message):
        Retrieval(data=[], pairs=pairs, ks=ks)


def test_names_a_modality_the_model_lacks_and_a_pair_no_sample_has():
    data = [{"video": torch.randn(2, 4), "audio": torch.zeros(2, 4), "audio_present": False} for _ in range(3)]
    with pytest.raises(ValueError, match="no modality 'text'"):
        Retrieval(data=data, pairs=[["video", "text"]])(fake_model())
    with pytest.raises(ValueError, match="video-audio: no sample of the data has both"):
        Retrieval(data=data, pairs=[["video", "audio"]])(fake_model())
    unreadable = FlakyDataset(paired_samples(3, torch.Generator().manual_seed(0)), unreadable={0, 1, 2})
    with pytest.raises(ValueError, match=r"no sample of the data has both modalities \(0 lack one, 3 left out as "
                                         "unreadable"):
        Retrieval(data=unreadable, pairs=[["video", "audio"]])(fake_model())
