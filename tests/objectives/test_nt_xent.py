"""NT-Xent: a hand computation, the gathered BatchNorm projector, absent samples, and two processes."""

import math
import os
import subprocess
import sys
from pathlib import Path

import gin
import pytest
import torch

from mmmae.objectives.nt_xent import GatheredBatchNorm, NTXent
from tests.float32_bound import infonce_bound, rounding_bound
from tests.objectives import nt_xent_two_process as two_process
from tests.objectives.pooled_outputs import encodings as pooled_encodings
from tests.objectives.pooled_outputs import outputs

REPO = Path(__file__).resolve().parents[2]


def encodings(batch: int = 4, tokens: int = 3, dim: int = 5, seed: int = 0) -> dict[str, torch.Tensor]:
    return pooled_encodings(("view1", "view2"), batch, tokens, dim, seed)


def identity_projector(objective: NTXent) -> NTXent:
    """depth 0 leaves one Linear: make it the identity, so the embedding is the pooled feature."""
    with torch.no_grad():
        objective.projector.out.weight.copy_(torch.eye(objective.projector.out.weight.shape[0]))
        objective.projector.out.bias.zero_()
    return objective


def hand_nt_xent(view1: torch.Tensor, view2: torch.Tensor, temperature: float) -> tuple[float, float]:
    """SimCLR's loss with loops: rows and columns are the 2B pooled, normalised embeddings of both
    views; row r's positive is the other view of its sample, its denominator every column but r."""
    embeddings = []
    for x in (view1, view2):
        for sample in x.tolist():
            mean = [sum(token[d] for token in sample) / len(sample) for d in range(len(sample[0]))]
            norm = math.sqrt(sum(v * v for v in mean))
            embeddings.append([v / norm for v in mean])
    n, half = len(embeddings), len(embeddings) // 2
    total, correct = 0.0, 0
    for r, q in enumerate(embeddings):
        logits = {c: sum(a * b for a, b in zip(q, k)) / temperature for c, k in enumerate(embeddings) if c != r}
        positive = (r + half) % n
        log_sum_exp = math.log(sum(math.exp(v) for v in logits.values()))
        total += log_sum_exp - logits[positive]
        correct += max(logits, key=logits.get) == positive
    return total / n, correct / n


def test_loss_matches_hand_computation():
    encoded = encodings()
    objective = identity_projector(NTXent(("view1", "view2"), in_dim=5, proj_dim=5, depth=0, temperature=0.1))
    loss, logs = objective(outputs(encoded), {})
    expected, accuracy = hand_nt_xent(encoded["view1"], encoded["view2"], 0.1)
    bound = infonce_bound(10.0, terms=8, batch=8)  # sums over 3 tokens, 5 dimensions, 8 columns; 8 rows
    assert loss.item() == pytest.approx(expected, abs=bound)
    assert logs["nt_xent_view1_view2"].item() == pytest.approx(expected, abs=bound)
    assert logs["nt_xent_view1_view2_accuracy"].item() == pytest.approx(accuracy)
    assert logs["nt_xent_view1_view2_skipped"].item() == 0


def test_each_row_excludes_itself_but_keeps_its_own_views_other_samples():
    """Identical views: every row's positive is a copy of itself, so the loss is the log of the
    count of columns other than the row itself weighed against the positive: with orthogonal
    samples, log(1 + (2B - 2) exp(-1 / t)) exactly."""
    basis = torch.eye(4)[:, None, :]  # (4, 1, 4): four orthogonal one-token samples
    objective = identity_projector(NTXent(("view1", "view2"), in_dim=4, proj_dim=4, depth=0, temperature=0.5))
    loss, logs = objective(outputs({"view1": basis, "view2": basis.clone()}), {})
    assert loss.item() == pytest.approx(math.log(1 + 6 * math.exp(-2.0)), rel=1e-5)
    assert logs["nt_xent_view1_view2_accuracy"].item() == 1.0


def test_gathered_batch_norm_normalises_the_usable_rows_like_batchnorm1d_on_them():
    torch.manual_seed(0)
    x, rows = torch.randn(6, 5) * 3 + 1, torch.tensor([1, 1, 0, 1, 1, 0], dtype=torch.bool)
    ours, reference = GatheredBatchNorm(5), torch.nn.BatchNorm1d(5)
    with torch.no_grad():
        for norm in (ours, reference):
            norm.weight.uniform_(0.5, 2.0, generator=torch.Generator().manual_seed(1))
            norm.bias.uniform_(-1.0, 1.0, generator=torch.Generator().manual_seed(2))
    out, expected = ours(x, rows), reference(x[rows])
    bound = rounding_bound(expected, stages=3, terms=6)  # mean, variance, normalisation over 6 rows
    assert (out[rows] - expected).abs().max() <= bound
    assert (ours.running_mean - reference.running_mean).abs().max() <= rounding_bound(x, 2, 6)
    assert (ours.running_var - reference.running_var).abs().max() <= rounding_bound(x.square(), 3, 6)
    ours.eval(), reference.eval()
    assert (ours(x, rows) - reference(x)).abs().max() <= rounding_bound(reference(x), 2, 1)


def test_a_single_usable_row_leaves_the_running_statistics_alone():
    norm = GatheredBatchNorm(3)
    out = norm(torch.randn(4, 3), torch.tensor([0, 1, 0, 0], dtype=torch.bool))
    assert torch.isfinite(out).all()
    assert torch.equal(norm.running_mean, torch.zeros(3)) and torch.equal(norm.running_var, torch.ones(3))


def test_absent_samples_equal_the_present_subset_alone():
    encoded = {m: x.requires_grad_() for m, x in encodings(batch=6).items()}
    present = {"view1": torch.tensor([1, 0, 1, 1, 1, 1], dtype=torch.bool),
               "view2": torch.tensor([1, 1, 1, 1, 0, 1], dtype=torch.bool)}
    torch.manual_seed(0)
    objective = NTXent(("view1", "view2"), in_dim=5, proj_dim=4, hidden=8)
    loss, logs = objective(outputs(encoded, present), {"index": torch.arange(6)})
    keep = [0, 2, 3, 5]
    subset_loss, subset_logs = objective(outputs({m: x[keep] for m, x in encoded.items()}), {})
    # the same rows reduced in another order; the projector adds 2 x (Linear, BatchNorm) and a Linear
    assert (loss - subset_loss).abs() <= infonce_bound(10.0, terms=8, batch=12, stages=8)
    assert logs["nt_xent_view1_view2_accuracy"] == subset_logs["nt_xent_view1_view2_accuracy"]
    assert logs["nt_xent_view1_view2_skipped"].item() == 2
    loss.backward()
    for x in encoded.values():
        assert x.grad[[1, 4]].abs().max() == 0 and x.grad[keep].abs().max() > 0


def test_no_usable_sample_gives_a_zero_loss_that_backpropagates():
    encoded = {m: x.requires_grad_() for m, x in encodings().items()}
    present = {"view1": torch.tensor([1, 1, 0, 0], dtype=torch.bool),
               "view2": torch.tensor([0, 0, 1, 1], dtype=torch.bool)}
    objective = NTXent(("view1", "view2"), in_dim=5, hidden=8)
    loss, _ = objective(outputs(encoded, present), {})
    assert loss.item() == 0 and loss.requires_grad
    loss.backward()
    assert torch.equal(encoded["view1"].grad, torch.zeros_like(encoded["view1"]))
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in objective.parameters())


def test_strict_names_objective_modality_and_sample_indices():
    present = {"view2": torch.tensor([1, 1, 0, 1], dtype=torch.bool)}
    objective = NTXent(("view1", "view2"), in_dim=5, hidden=8, strict=True)
    with pytest.raises(ValueError) as error:
        objective(outputs(encodings(), present), {"index": torch.tensor([10, 11, 12, 13])})
    message = str(error.value)
    assert "nt_xent_view1_view2" in message and "'view1', 'view2'" in message and "[12]" in message


@pytest.mark.parametrize("kwargs, message", [
    (dict(modalities=("view1",)), "two different modalities"),
    (dict(modalities=("view1", "view1")), "two different modalities"),
    (dict(depth=-1), "depth >= 0"),
    (dict(hidden=0), "positive widths"),
    (dict(temperature=0.005), "at least 0.01"),
])
def test_bad_arguments_fail_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        NTXent(**{"modalities": ("view1", "view2"), "in_dim": 5, **kwargs})


def test_gin_builds_the_vic_mae_setting():
    gin.parse_config("""
        NTXent.modalities = ['view1', 'view2']
        NTXent.in_dim = 5
        NTXent.weight = 0.03
    """)
    objective = NTXent()
    assert (objective.name, objective.weight, objective.logit_scale().item()) == ("nt_xent_view1_view2", 0.03,
                                                                                   pytest.approx(10.0))
    assert [p.shape for p in objective.projector.parameters()] == [
        (4096, 5), (4096,), (4096, 4096), (4096,), (4096,), (4096,), (4096,), (4096,), (128, 4096), (128,)]
    assert not any(p.shape == () for p in objective.parameters()), "the temperature is fixed"


def test_two_processes_agree_with_one_full_batch(tmp_path):
    """Per-process gradients through the gathered BatchNorm statistics and the gathered columns
    equal the full-batch gradients (the argument of test_contrastive's two-process test: process
    r's loss L_r is the mean over its n usable rows, L = (L_0 + L_1) / 2 over the whole batch, so
    cat(g_0, g_1) / 2 == dL/dx and the mean of the parameter gradients is dL/dtheta). The running
    statistics match too. A gather without gradient to the other process must be caught."""
    env = dict(os.environ, ACCELERATE_USE_CPU="1", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               str(REPO / "tests" / "objectives" / "nt_xent_two_process.py"), str(tmp_path)]
    result = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    ranks = [tmp_path / f"rank{r}.pt" for r in range(2)]
    # a process may fail at gloo's teardown after both wrote their results; the results are what count
    assert all(p.exists() for p in ranks), result.stderr[-3000:]
    ranks = [torch.load(p) for p in ranks]

    objective, encoded, present = two_process.build()
    full = two_process.loss_and_grads(objective, encoded, present)
    # rounding only: the projector (2 x Linear, BatchNorm over 8 rows, then a Linear) adds stages
    batch = two_process.WORLD * two_process.LOCAL_B
    terms = max(two_process.HIDDEN, two_process.TOKENS, 2 * batch)
    bound = infonce_bound(objective.logit_scale().item(), terms=terms, batch=2 * batch, stages=9)
    assert ((ranks[0]["loss"] + ranks[1]["loss"]) / 2 - full["loss"]).abs() <= bound
    for key in full:
        if key.startswith("input."):
            got = torch.cat([ranks[0][key], ranks[1][key]]) / 2
        elif key.startswith("param."):
            got = (ranks[0][key] + ranks[1][key]) / 2
        elif key.startswith("buffer."):
            assert torch.equal(ranks[0][key], ranks[1][key]), key
            got = ranks[0][key]
        else:
            continue
        # a bias before a BatchNorm has an exact gradient of 0 (the mean subtraction removes it): its
        # rounding is that of the per-row gradients it sums, which its weight's gradient sums too
        scale = full[key.replace("bias", "weight")] if ".linears." in key and key.endswith("bias") else full[key]
        assert (got - full[key]).abs().max() <= rounding_bound(scale, 18, terms), key

    detached = torch.cat([ranks[0]["detached.input.view1"], ranks[1]["detached.input.view1"]]) / 2
    full_again = two_process.loss_and_grads(objective, encoded, present)  # the second step, as the ranks ran it
    assert (detached - full_again["input.view1"]).abs().max() > 1e-3
