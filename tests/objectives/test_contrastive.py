"""Contrastive InfoNCE: hand-computed values, temperature, absent samples, embed, and two processes."""

import math
import os
import subprocess
import sys
from pathlib import Path

import gin
import pytest
import torch
import torch.nn.functional as F

from mmmae.objectives.contrastive import Contrastive
from tests.float32_bound import infonce_bound, rounding_bound
from tests.objectives import contrastive_two_process as two_process
from tests.objectives.pooled_outputs import encodings as pooled_encodings
from tests.objectives.pooled_outputs import outputs

REPO = Path(__file__).resolve().parents[2]


def encodings(batch: int = 4, tokens: int = 3, dim: int = 5, seed: int = 0) -> dict[str, torch.Tensor]:
    return pooled_encodings(("video", "imu"), batch, tokens, dim, seed)


def hand_pooled(x: torch.Tensor) -> list[list[float]]:
    """Mean over tokens, then L2 normalisation, with loops: (B, K, D) -> B lists of D floats."""
    rows = []
    for sample in x.tolist():
        mean = [sum(token[d] for token in sample) / len(sample) for d in range(len(sample[0]))]
        norm = math.sqrt(sum(v * v for v in mean))
        rows.append([v / norm for v in mean])
    return rows


def hand_infonce(query: list[list[float]], keys: list[list[float]], scale: float) -> tuple[float, float]:
    """Mean over rows of -log softmax(scale * q_i . k_j)[i], and the top-1 accuracy."""
    total, correct = 0.0, 0
    for i, q in enumerate(query):
        logits = [scale * sum(a * b for a, b in zip(q, k)) for k in keys]
        top = max(logits)
        log_sum_exp = top + math.log(sum(math.exp(v - top) for v in logits))
        total += log_sum_exp - logits[i]
        correct += logits.index(top) == i
    return total / len(query), correct / len(query)


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("learnable", [True, False])
def test_loss_matches_hand_computation(symmetric, learnable):
    encoded = encodings()
    objective = Contrastive(("video", "imu"), in_dim=5, projection=None, temperature=0.1,
                            learnable_temperature=learnable, symmetric=symmetric)
    loss, logs = objective(outputs(encoded), {})
    v, i = hand_pooled(encoded["video"]), hand_pooled(encoded["imu"])
    forward, accuracy = hand_infonce(v, i, 10.0)
    expected = (forward + hand_infonce(i, v, 10.0)[0]) / 2 if symmetric else forward
    bound = infonce_bound(10.0, terms=5, batch=4)  # sums over 3 tokens and 5 dimensions, 4 rows
    assert loss.item() == pytest.approx(expected, abs=bound)
    assert logs["contrastive_video_imu"].item() == pytest.approx(expected, abs=bound)
    assert logs["contrastive_video_imu_accuracy"].item() == pytest.approx(accuracy)
    assert logs["contrastive_video_imu_temperature"].item() == pytest.approx(0.1)
    assert logs["contrastive_video_imu_skipped"].item() == 0


def test_direction_matters_when_one_way():
    encoded = encodings(seed=1)
    ab = Contrastive(("video", "imu"), in_dim=5, projection=None, symmetric=False)
    ba = Contrastive(("imu", "video"), in_dim=5, projection=None, symmetric=False)
    assert ba.name == "contrastive_imu_video"
    assert not torch.isclose(ab(outputs(encoded), {})[0], ba(outputs(encoded), {})[0])


def test_fixed_temperature_has_no_parameter_and_learnable_one_gets_a_gradient():
    fixed = Contrastive(("video", "imu"), in_dim=5, projection=None, learnable_temperature=False)
    assert list(fixed.parameters()) == []
    learnable = Contrastive(("video", "imu"), in_dim=5, projection=None, temperature=0.07)
    (param,) = learnable.parameters()
    assert param.item() == pytest.approx(math.log(1 / 0.07))
    learnable(outputs(encodings()), {})[0].backward()
    assert param.grad is not None and param.grad.abs().item() > 1e-4


def test_learnable_scale_is_clamped_at_100():
    objective = Contrastive(("video", "imu"), in_dim=5, projection=None, temperature=0.05)
    with torch.no_grad():
        objective.log_logit_scale.fill_(math.log(1000.0))
    assert objective(outputs(encodings()), {})[1]["contrastive_video_imu_temperature"].item() == pytest.approx(0.01)


def test_absent_samples_equal_the_present_subset_alone():
    encoded = {m: x.requires_grad_() for m, x in encodings(batch=6).items()}
    present = {"video": torch.tensor([1, 0, 1, 1, 1, 1], dtype=torch.bool),
               "imu": torch.tensor([1, 1, 1, 1, 0, 1], dtype=torch.bool)}
    torch.manual_seed(0)
    objective = Contrastive(("video", "imu"), in_dim=5, proj_dim=4)
    loss, logs = objective(outputs(encoded, present), {"index": torch.arange(6)})
    keep = [0, 2, 3, 5]
    subset_loss, subset_logs = objective(outputs({m: x[keep] for m, x in encoded.items()}), {})
    # the same rows, reduced in another order: the projection head (5 terms) is one more stage
    assert (loss - subset_loss).abs() <= infonce_bound(objective.logit_scale().item(), terms=6, batch=6, stages=4)
    assert logs["contrastive_video_imu_accuracy"] == subset_logs["contrastive_video_imu_accuracy"]
    assert logs["contrastive_video_imu_skipped"].item() == 2
    loss.backward()
    for x in encoded.values():
        assert x.grad[[1, 4]].abs().max() == 0 and x.grad[keep].abs().max() > 0


def test_no_usable_sample_gives_a_zero_loss_that_backpropagates():
    encoded = {m: x.requires_grad_() for m, x in encodings().items()}
    present = {"video": torch.tensor([1, 1, 0, 0], dtype=torch.bool),
               "imu": torch.tensor([0, 0, 1, 1], dtype=torch.bool)}
    objective = Contrastive(("video", "imu"), in_dim=5)
    loss, logs = objective(outputs(encoded, present), {})
    assert loss.item() == 0 and loss.requires_grad
    loss.backward()
    assert torch.equal(encoded["video"].grad, torch.zeros_like(encoded["video"]))
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in objective.parameters())
    assert logs["contrastive_video_imu_skipped"].item() == 4


def test_strict_names_objective_modality_and_sample_indices():
    present = {"imu": torch.tensor([1, 1, 0, 1], dtype=torch.bool)}
    objective = Contrastive(("video", "imu"), in_dim=5, strict=True)
    with pytest.raises(ValueError) as error:
        objective(outputs(encodings(), present), {"index": torch.tensor([10, 11, 12, 13])})
    message = str(error.value)
    assert "contrastive_video_imu" in message and "'video', 'imu'" in message and "[12]" in message


@pytest.mark.parametrize("projection, dim", [("linear", 7), ("mlp", 7), (None, 5)])
def test_embed_is_normalised_and_applies_the_head(projection, dim):
    objective = Contrastive(("video", "imu"), in_dim=5, proj_dim=7, projection=projection)
    encoded = encodings()["imu"]
    embedding = objective.embed("imu", encoded)
    assert embedding.shape == (4, dim)
    assert torch.allclose(embedding.norm(dim=-1), torch.ones(4), atol=1e-6)
    assert torch.allclose(embedding, F.normalize(objective.heads["imu"](encoded.mean(1)), dim=-1))
    if projection:
        assert not torch.allclose(embedding, objective.embed("video", encoded)), "each modality has its own head"


@pytest.mark.parametrize("kwargs, message", [
    (dict(modalities=("video",)), "two different modalities"),
    (dict(modalities=("video", "video")), "two different modalities"),
    (dict(temperature=0.0), "positive"),
    (dict(temperature=0.005), "clamped"),
    (dict(temperature=0.005, learnable_temperature=False), "at least 0.01"),
    (dict(projection="deep"), "kind"),
    (dict(view="unmasked"), "view"),
])
def test_bad_arguments_fail_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Contrastive(**{"modalities": ("video", "imu"), "in_dim": 5, **kwargs})


def test_gin_builds_the_cav_mae_setting():
    gin.parse_config("""
        Contrastive.modalities = ['audio', 'video']
        Contrastive.in_dim = 5
        Contrastive.projection = None
        Contrastive.temperature = 0.05
        Contrastive.learnable_temperature = False
        Contrastive.symmetric = False
        Contrastive.weight = 0.01
    """)
    objective = Contrastive()
    assert (objective.name, objective.weight, objective.symmetric) == ("contrastive_audio_video", 0.01, False)
    assert objective.logit_scale().item() == pytest.approx(20.0)


def test_two_processes_agree_with_one_full_batch(tmp_path):
    """Per-process gradients through the autograd-aware gather equal the full-batch gradients.

    Let l_i be global row i's loss (both directions averaged), U_r the usable rows of process r and
    |U_0| = |U_1| = n (one absent sample per process). Process r computes L_r = sum_{i in U_r} l_i / n;
    one process on the whole batch computes L = sum_{i in U} l_i / 2n = (L_0 + L_1) / 2. Every l_i
    depends on every process's inputs (through the gathered columns). all_gather's backward sums, over
    processes, the gradient each put on process r's slot and hands it to r, so process r's input
    gradient is d(L_0 + L_1)/dx_r = 2 dL/dx_r: cat(g_0, g_1) / 2 == dL/dx. Parameter gradients on
    process r are the contributions through its own rows (heads) or its own loss (logit scale); they
    sum to d(L_0 + L_1)/dtheta, so their mean (what DDP applies) is dL/dtheta. A gather without
    gradient leaves out d L_s / dx_r for s != r, which the last assertion shows the comparison catches.
    """
    env = dict(os.environ, ACCELERATE_USE_CPU="1", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               str(REPO / "tests" / "objectives" / "contrastive_two_process.py"), str(tmp_path)]
    result = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]

    objective, encoded, present = two_process.build()
    full = two_process.loss_and_grads(objective, encoded, present)
    # rounding only: the loss within the InfoNCE bound (the heads, one more stage; sums over at most the
    # batch of 8), the gradients within forward and backward's stages over the same sums
    batch = two_process.WORLD * two_process.LOCAL_B
    terms = max(two_process.WIDTH, two_process.TOKENS, batch)
    bound = infonce_bound(objective.logit_scale().item(), terms=terms, batch=batch, stages=4)
    assert ((ranks[0]["loss"] + ranks[1]["loss"]) / 2 - full["loss"]).abs() <= bound
    for key in full:
        if key.startswith("input."):
            got = torch.cat([ranks[0][key], ranks[1][key]]) / 2
        elif key.startswith("param."):
            got = (ranks[0][key] + ranks[1][key]) / 2
        else:
            continue
        assert (got - full[key]).abs().max() <= rounding_bound(full[key], 8, terms), key

    detached = torch.cat([ranks[0]["detached.input.video"], ranks[1]["detached.input.video"]]) / 2
    assert torch.allclose(ranks[0]["detached.loss"], ranks[0]["loss"])
    assert (detached - full["input.video"]).abs().max() > 1e-3


def test_full_view_pools_the_full_encoding_and_masked_view_the_visible_one():
    masked, full = encodings(seed=1), encodings(tokens=6, seed=2)
    out = outputs(masked)
    for m in out:
        out[m].full, out[m].full_mask = full[m], None
    args = dict(modalities=("video", "imu"), in_dim=5, projection=None, learnable_temperature=False, symmetric=False)
    loss_full, _ = Contrastive(**args, view="full")(out, {})
    loss_masked, _ = Contrastive(**args)(out, {})
    bound = infonce_bound(1 / 0.07, terms=6, batch=4)  # sums over at most 6 tokens and 5 dimensions
    assert loss_full == pytest.approx(hand_infonce(hand_pooled(full["video"]), hand_pooled(full["imu"]), 1 / 0.07)[0],
                                      abs=bound)
    assert loss_masked == pytest.approx(
        hand_infonce(hand_pooled(masked["video"]), hand_pooled(masked["imu"]), 1 / 0.07)[0], abs=bound)
    assert Contrastive(**args, view="full").full_view_modalities == ("video", "imu")
    assert Contrastive(**args).full_view_modalities == ()


def test_full_view_without_the_models_pass_names_the_objective():
    out = outputs(encodings())
    for m in out:
        out[m].full = None
    with pytest.raises(ValueError, match="contrastive_video_imu: view 'full'"):
        Contrastive(modalities=("video", "imu"), in_dim=5, view="full")(out, {})


def test_standardize_removes_a_common_component_and_skips_absent_rows():
    encoded = encodings(batch=6, seed=3)
    shifted = {m: x + 50.0 for m, x in encoded.items()}  # a component every sample shares
    present = {"imu": torch.tensor([True, True, True, True, True, False])}
    args = dict(modalities=("video", "imu"), in_dim=5, projection=None, learnable_temperature=False)
    plain, _ = Contrastive(**args)(outputs(shifted, present), {})
    objective = Contrastive(**args, standardize=True)
    loss, _ = objective(outputs(shifted, present), {})
    reference = Contrastive(**args, standardize=True)
    usable = {m: x[:5] for m, x in encoded.items()}  # the same rows, unshifted, absent row left out
    expected, _ = reference(outputs(usable), {})
    assert loss.item() == pytest.approx(expected.item(), rel=1e-4)
    assert plain.item() == pytest.approx(math.log(5), abs=1e-2)  # the shift swamps the cosine
    assert torch.allclose(objective.standardizers["imu"].mean, encoded["imu"][:5].mean(dim=1).mean(dim=0) + 50.0,
                          atol=1e-4)
