"""CaptionContrastive: hand-computed InfoNCE, duplicate captions, skipped samples, errors, two
processes, and the TGM recipe's model with its head shared between masker and objective."""

import math
import os
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest
import safetensors.torch
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import default_collate

from mmmae.objectives.caption_contrastive import CaptionContrastive
from tests.float32_bound import infonce_bound, rounding_bound

MICRO = str(Path(__file__).resolve().parents[1] / "fixtures" / "micro_overrides.gin")
DIM = 5
BOUND = infonce_bound(10.0, terms=DIM, batch=4)  # sums over 3 tokens and 5 dimensions, 4 rows


class TableEncoder:
    """A stand-in text encoder: a fixed (not necessarily unit) vector per caption."""

    def __call__(self, captions):
        seeds = [sum(map(ord, c)) for c in captions]
        return torch.stack([torch.randn(DIM, generator=torch.Generator().manual_seed(s)) for s in seeds])


def outputs(encoded: torch.Tensor, present: torch.Tensor | None = None) -> dict:
    present = torch.ones(len(encoded), dtype=torch.bool) if present is None else present
    return {"video": SimpleNamespace(encoded=encoded, present=present, mask=None)}


def objective(**kwargs) -> CaptionContrastive:
    kwargs = {"temperature": 0.1, **kwargs}
    return CaptionContrastive(nn.Identity(), text_encoder=TableEncoder(), **kwargs)


def unit(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in vector))
    return [v / norm for v in vector]


def hand_infonce(queries, keys, scale, rows, allowed) -> float:
    """Mean over `rows` of -log softmax over the allowed columns of scale * q_i . k_j, at column i."""
    total = 0.0
    for i in rows:
        logits = {j: scale * sum(a * b for a, b in zip(queries[i], k)) for j, k in enumerate(keys) if allowed(i, j)}
        total += math.log(sum(math.exp(v) for v in logits.values())) - logits[i]
    return total / len(rows)


def hand_loss(encoded, captions, symmetric, dedupe, usable) -> float:
    video = [unit([sum(tok[d] for tok in sample) / len(sample) for d in range(DIM)]) for sample in encoded.tolist()]
    text = [unit(v) for v in TableEncoder()(captions).tolist()]
    rows = [i for i in range(len(captions)) if usable[i]]

    def allowed(i, j):
        return j in rows and (i == j or not dedupe or captions[i] != captions[j])

    forward = hand_infonce(video, text, 10.0, rows, allowed)
    return (forward + hand_infonce(text, video, 10.0, rows, allowed)) / 2 if symmetric else forward


CAPTIONS = ["a one moves up", "a two moves down", "a one moves up", "a six moves left"]


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("dedupe", [True, False])
def test_loss_matches_hand_computation(symmetric, dedupe):
    encoded = torch.randn(4, 3, DIM, generator=torch.Generator().manual_seed(0))
    loss, logs = objective(symmetric=symmetric, dedupe_captions=dedupe)(outputs(encoded), {"caption": CAPTIONS})
    expected = hand_loss(encoded, CAPTIONS, symmetric, dedupe, [True] * 4)
    assert loss.item() == pytest.approx(expected, abs=BOUND)
    assert logs["caption_contrastive_video"].item() == pytest.approx(expected, abs=BOUND)
    assert logs["caption_contrastive_video_temperature"].item() == pytest.approx(0.1)
    assert logs["caption_contrastive_video_skipped"].item() == 0


def test_dedupe_removes_only_the_false_negatives():
    encoded = torch.randn(4, 3, DIM, generator=torch.Generator().manual_seed(1))
    batch = {"caption": CAPTIONS}
    with_dupes, _ = objective(dedupe_captions=False)(outputs(encoded), batch)
    deduped, _ = objective(dedupe_captions=True)(outputs(encoded), batch)
    assert deduped < with_dupes  # fewer negatives in the rows and columns of samples 0 and 2
    distinct = {"caption": ["a", "b", "c", "d"]}
    assert objective(dedupe_captions=True)(outputs(encoded), distinct)[0] == objective(dedupe_captions=False)(
        outputs(encoded), distinct)[0]


def test_samples_without_video_or_caption_are_skipped_and_counted():
    encoded = torch.randn(4, 3, DIM, generator=torch.Generator().manual_seed(2))
    present = torch.tensor([True, False, True, True])
    captions = ["a one moves up", "a two moves down", "", "a six moves left"]
    loss, logs = objective()(outputs(encoded, present), {"caption": captions})
    assert logs["caption_contrastive_video_skipped"].item() == 2
    assert loss.item() == pytest.approx(hand_loss(encoded, captions, True, True, [True, False, False, True]), abs=BOUND)


def test_strict_names_the_samples():
    encoded = torch.randn(3, 2, DIM)
    batch = {"caption": ["a", "", "c"], "index": torch.tensor([10, 11, 12])}
    with pytest.raises(ValueError, match=r"caption_contrastive_video: samples \[11\] have an empty batch\['caption'\]"):
        objective(strict=True)(outputs(encoded), batch)
    with pytest.raises(ValueError, match=r"samples \[12\] lack one of the modalities \['video'\]"):
        objective(strict=True)(outputs(encoded, torch.tensor([True, True, False])), dict(batch, caption=["a"] * 3))


def test_all_skipped_gives_a_finite_zero_loss():
    loss, logs = objective()(outputs(torch.randn(2, 2, DIM)), {"caption": ["", " "]})
    assert loss.item() == 0 and logs["caption_contrastive_video_skipped"].item() == 2


def test_missing_caption_and_unknown_modality_are_named():
    with pytest.raises(KeyError, match=r"CaptionContrastive\.caption_key = 'caption'\) needs batch\['caption'\].*"
                                        r"the batch has keys \['index'\]"):
        objective()(outputs(torch.randn(2, 2, DIM)), {"index": torch.arange(2)})
    with pytest.raises(KeyError, match=r"CaptionContrastive\.modality = 'audio' is not a modality of the model"):
        objective(modality="audio")(outputs(torch.randn(2, 2, DIM)), {"caption": ["a", "b"]})


def test_gradient_reaches_projection_and_temperature():
    head = nn.Linear(4, DIM)
    objective_ = CaptionContrastive(head, text_encoder=TableEncoder())
    assert [n for n, _ in objective_.named_parameters()] == ["log_logit_scale", "projection.weight", "projection.bias"]
    loss, _ = objective_(outputs(torch.randn(3, 2, 4)), {"caption": ["a", "b", "c"]})
    loss.backward()
    assert head.weight.grad.abs().sum() > 0 and objective_.log_logit_scale.grad.abs() > 0
    fixed = CaptionContrastive(head, text_encoder=TableEncoder(), learnable_temperature=False)
    assert "log_logit_scale" not in dict(fixed.named_parameters()) and "log_logit_scale" not in fixed.state_dict()


@pytest.mark.parametrize("temperature", [0.0, -1.0, 0.005])
def test_bad_temperature_fails_at_construction(temperature):
    with pytest.raises(ValueError, match=r"CaptionContrastive\.temperature must be at least 0\.01"):
        objective(temperature=temperature)


WORLD, LOCAL_B = 2, 4
# Duplicates across the two processes' halves; one empty caption per half keeps the usable counts equal.
GLOBAL_CAPTIONS = ["a", "b", "a", "", "c", "a", "", "b"]


def two_process_inputs() -> tuple[CaptionContrastive, torch.Tensor]:
    torch.manual_seed(0)
    return CaptionContrastive(nn.Linear(6, DIM), text_encoder=TableEncoder(), temperature=0.2), torch.randn(8, 3, 6)


def loss_and_input_grad(objective_: CaptionContrastive, encoded: torch.Tensor, captions: list[str]):
    leaf = encoded.clone().requires_grad_()
    loss, _ = objective_(outputs(leaf), {"caption": captions})
    loss.backward()
    return loss.detach(), leaf.grad


def _two_process_worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    objective_, encoded = two_process_inputs()
    rows = slice(rank * LOCAL_B, (rank + 1) * LOCAL_B)
    torch.save(loss_and_input_grad(objective_, encoded[rows], GLOBAL_CAPTIONS[rows]), Path(out_dir) / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_two_processes_agree_with_one_full_batch(tmp_path):
    """Negatives, caption ids for dedupe and usable flags are gathered: the mean of the two
    processes' losses is the full batch's loss, and their input gradients (all_gather's backward
    sums every process's share) are twice the full batch's (see test_contrastive.py)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.multiprocessing.spawn(_two_process_worker, args=(port, str(tmp_path)), nprocs=WORLD)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    full_loss, full_grad = loss_and_input_grad(*two_process_inputs(), GLOBAL_CAPTIONS)
    # rounding only (sums over at most the global batch): the InfoNCE bound, and forward and backward's stages
    terms = max(6, WORLD * LOCAL_B)  # the head's 6 inputs, the global batch
    bound = infonce_bound(1 / 0.2, terms=terms, batch=WORLD * LOCAL_B, stages=4)  # the head: one more stage
    assert ((ranks[0][0] + ranks[1][0]) / 2 - full_loss).abs() <= bound
    assert (torch.cat([ranks[0][1], ranks[1][1]]) / 2 - full_grad).abs().max() <= rounding_bound(full_grad, 8, terms)


@pytest.fixture
def tgm_model():
    from mmmae.config import parse_config
    from mmmae.model import MaskedAutoencoder

    parse_config(["recipes/tgm.gin", MICRO])
    return MaskedAutoencoder()


def micro_batch() -> dict:
    import gin

    from mmmae.data.moving_digits.dataset import MovingDigits

    with gin.config_scope("train"):
        data = MovingDigits()
    return default_collate([data[i] for i in range(4)])


def test_recipe_shares_one_head_between_masker_and_objective(tgm_model):
    from mmmae.masking.rng import MaskRNG

    scorer = tgm_model.modalities["video"].masker.scorer
    objective_ = tgm_model.objectives[1]
    assert scorer.projection is objective_.projection
    every = [p for _, p in tgm_model.named_parameters(remove_duplicate=False)]
    assert len(list(tgm_model.parameters())) == len({id(p) for p in every}) == len(every) - 2  # weight, bias
    names = [n for n, _ in tgm_model.named_parameters()]
    assert "modalities.video.masker.scorer.projection.layers.0.weight" in names
    assert not any(n.startswith("objectives.0.projection") for n in names)
    assert not any("text_encoder" in n or "bert" in n.lower() for n in tgm_model.state_dict())

    out = tgm_model(micro_batch(), MaskRNG.seeded(0))
    out.loss.backward()
    assert objective_.projection.layers[0].weight.grad.abs().sum() > 0, "L_NCE trains the head the masker uses"
    assert out.outputs["video"].plan.predict.shape == (4, 2 * 9)  # grid (2, 4, 4): int(0.6 * 16) per slice
    assert math.isfinite(out.logs["caption_contrastive_video"].item())


def test_recipe_model_round_trips_through_safetensors(tgm_model, tmp_path):
    from mmmae.config import parse_config
    from mmmae.masking.rng import MaskRNG
    from mmmae.model import MaskedAutoencoder

    with pytest.raises(RuntimeError, match="share memory"):  # why train.py saves with save_model
        safetensors.torch.save_file(tgm_model.state_dict(), str(tmp_path / "raw.safetensors"))
    path = str(tmp_path / "model.safetensors")
    safetensors.torch.save_model(tgm_model, path)

    parse_config(["recipes/tgm.gin", MICRO])  # a fresh gin singleton: a new head for the new model
    loaded = MaskedAutoencoder()
    assert loaded.objectives[1].projection is not tgm_model.objectives[1].projection
    missing, unexpected = safetensors.torch.load_model(loaded, path)
    assert not missing and not unexpected
    assert loaded.modalities["video"].masker.scorer.projection is loaded.objectives[1].projection
    saved = tgm_model.state_dict()
    assert all(torch.equal(value, saved[name]) for name, value in loaded.state_dict().items())
    batch = micro_batch()
    with torch.no_grad():
        assert torch.equal(loaded(batch, MaskRNG.seeded(3)).loss, tgm_model(batch, MaskRNG.seeded(3)).loss)
