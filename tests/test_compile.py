"""torch.compile: a micro VideoMAE training step traces as one graph and trains as in eager."""

import copy

import pytest
import torch
import torch._dynamo

from mmmae.config import parse_config
from mmmae.masking.rng import MaskRNG
from mmmae.model import MaskedAutoencoder
from tests.conftest import MICRO_GIN
from tests.float32_bound import longest_sum, rounding_bound, transformer_stages


def micro_videomae(*bindings: str) -> tuple[MaskedAutoencoder, dict]:
    """3x4x16x16 clips in 2x8x8 tubelets (8 tokens), tube masking, MaskTokenDecoder, Reconstruction."""
    parse_config([MICRO_GIN], list(bindings))
    torch.manual_seed(0)
    return MaskedAutoencoder(), {"video": torch.rand(2, 3, 4, 16, 16, generator=torch.Generator().manual_seed(0))}


@pytest.fixture(autouse=True)
def fresh_dynamo(tmp_path, monkeypatch):
    """A reset dynamo and a private Inductor cache: kernels that a run under another instruction set
    (another ATEN_CPU_CAPABILITY, or another machine sharing /tmp) left in the shared cache are
    loaded by key regardless of it and index out of bounds or abort."""
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize("bindings", [(), ("Encoder.checkpointing = True", "MaskTokenDecoder.checkpointing = True")],
                         ids=["plain", "checkpointing"])
def test_the_training_step_has_no_graph_break(bindings):
    model, batch = micro_videomae(*bindings)
    explained = torch._dynamo.explain(model)(batch, MaskRNG.seeded(0))
    reasons = [(reason.reason, reason.user_stack[-1:]) for reason in explained.break_reasons]
    assert explained.graph_break_count == 0, reasons
    assert explained.graph_count == 1


def test_a_compiled_step_trains_as_in_eager():
    eager, batch = micro_videomae()
    compiled = copy.deepcopy(eager)
    losses = []
    for model in (eager, torch.compile(compiled, backend="eager", fullgraph=True)):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        loss = model(batch, MaskRNG.seeded(0)).loss
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
    # exact: the eager backend runs the traced graph with the same kernels on the same shapes
    torch.testing.assert_close(losses[1], losses[0], atol=0, rtol=0)
    for (name, p), q in zip(eager.named_parameters(), compiled.parameters(), strict=True):
        torch.testing.assert_close(q, p, atol=0, rtol=0, msg=name)


def test_an_inductor_compiled_loss_keeps_its_gradient():
    """Inductor folds `0 + 1 * value` and `detach`, so a loss returned beside a detached log of
    the same value came back without grad_fn (pytorch/pytorch#194760); the model's logs avoid it.
    The compiled forward and backward give eager's loss, logs and gradients."""
    model, batch = micro_videomae()
    eager = model(batch, MaskRNG.seeded(0))
    eager_grads = torch.autograd.grad(eager.loss, list(model.parameters()), allow_unused=True)
    compiled = torch.compile(model, backend="inductor")(batch, MaskRNG.seeded(0))
    assert compiled.loss.grad_fn is not None
    # Inductor fuses and vectorises its own kernels: equal up to float32 rounding, bounded by the model's
    # stages and its longest sum, the loss's over the B * Q * P predicted values
    out = eager.outputs["video"]
    stages, terms = transformer_stages(model), max(longest_sum(model, out.tokens.num_tokens), out.prediction.numel())
    torch.testing.assert_close(compiled.loss, eager.loss, atol=rounding_bound(eager.loss, stages, terms), rtol=0)
    assert compiled.logs.keys() == eager.logs.keys()
    for name, value in eager.logs.items():
        torch.testing.assert_close(compiled.logs[name], value, atol=rounding_bound(value, stages, terms), rtol=0,
                                   msg=name)
    compiled_grads = torch.autograd.grad(compiled.loss, list(model.parameters()), allow_unused=True)
    for (name, _), got, want in zip(model.named_parameters(), compiled_grads, eager_grads, strict=True):
        assert (got is None) == (want is None), name
        if want is not None:
            # forward and backward; the weight gradients' sums over the batch's tokens
            torch.testing.assert_close(got, want, atol=rounding_bound(want, 2 * stages, terms), rtol=0, msg=name)
