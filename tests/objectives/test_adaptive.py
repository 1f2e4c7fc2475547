"""AdaMAE's sampling loss: the value, its gradient sign, one training step, missing inputs."""

import pytest
import torch

from mmmae.masking.adaptive import AdaptiveMasking
from mmmae.masking.rng import MaskRNG
from mmmae.objectives.adaptive import AdaptiveMaskingLoss
from mmmae.types import MaskPlan, ModalityOutput, Tokens

KEEP = torch.tensor([[0, 3], [1, 2]])
PREDICT = torch.tensor([[1, 2, 4, 5], [0, 3, 4, 5]])


def output(log_prob: torch.Tensor, prediction: torch.Tensor, target: torch.Tensor, keep=KEEP, predict=PREDICT,
           present=None) -> ModalityOutput:
    batch, num = log_prob.shape
    plan = MaskPlan(keep=keep, predict=predict, aux={"log_prob": log_prob})
    present = torch.ones(batch, dtype=torch.bool) if present is None else torch.tensor(present)
    return ModalityOutput(Tokens(torch.zeros(batch, num, 1), target, (num,)), plan, torch.zeros(batch, 2, 1),
                          prediction, present)


def example():
    """Two samples of 6 tokens, P = 2 target values; predictions of the 4 masked tokens."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 6, generator=generator, requires_grad=True)
    target = torch.randn(2, 6, 2, generator=generator)
    prediction = torch.randn(2, 4, 2, generator=generator, requires_grad=True)
    return logits, target, prediction


def test_loss_equals_a_hand_computation():
    logits, target, prediction = example()
    log_prob = torch.log_softmax(logits, -1)
    loss, logs = AdaptiveMaskingLoss()({"video": output(log_prob, prediction, target)}, {})
    per_sample = []
    for b in range(2):
        terms = []
        for q, token in enumerate(PREDICT[b].tolist()):
            error = sum((prediction[b, q, j].item() - target[b, token, j].item()) ** 2 for j in range(2)) / 2
            terms.append(log_prob[b, token].item() * error)
        per_sample.append(-sum(terms) / len(terms))
    assert loss.item() == pytest.approx(sum(per_sample) / 2, rel=1e-5)
    assert torch.equal(logs["video_adaptive_masking"], loss.detach())
    assert logs["video_adaptive_masking_skipped"] == 0


def test_gradient_raises_the_logit_of_high_error_masked_tokens_only():
    logits, target, _ = example()
    prediction = target[torch.arange(2)[:, None], PREDICT].clone()
    prediction[:, 0] += 3.0  # the first masked token of each sample has a high error, the others none
    loss, _ = AdaptiveMaskingLoss()({"video": output(torch.log_softmax(logits, -1), prediction, target)}, {})
    loss.backward()
    rows = torch.arange(2)
    assert (logits.grad[rows, PREDICT[:, 0]] < 0).all(), "gradient descent raises p of high-error tokens"
    assert (logits.grad[rows[:, None], PREDICT[:, 1:]] > 0).all()
    assert (logits.grad[rows[:, None], KEEP] > 0).all()


def test_error_is_a_constant_the_decoder_gets_no_gradient():
    logits, target, prediction = example()
    loss, _ = AdaptiveMaskingLoss()({"video": output(torch.log_softmax(logits, -1), prediction, target)}, {})
    loss.backward()
    assert prediction.grad is None and logits.grad.abs().sum() > 0


def test_one_sgd_step_on_the_sampler_raises_p_of_high_error_tokens():
    torch.manual_seed(0)
    sampler = AdaptiveMasking(dim=16, ratio=0.5, heads=2)
    tokens = Tokens(torch.randn(4, 16, 16), torch.randn(4, 16, 3), (16,))
    plan = sampler(tokens, {}, MaskRNG.seeded(0))
    hard = plan.predict[:, :3]  # the first 3 masked tokens of each sample are hard to reconstruct
    prediction = tokens.target[torch.arange(4)[:, None], plan.predict].clone() + 0.1
    prediction[:, :3] += 2.0
    out = ModalityOutput(tokens, plan, torch.zeros(4, 8, 16), prediction, torch.ones(4, dtype=torch.bool))
    loss, _ = AdaptiveMaskingLoss()({"video": out}, {})
    rows = torch.arange(4)[:, None]
    before = plan.aux["log_prob"].detach().exp()
    optimizer = torch.optim.SGD(sampler.parameters(), lr=0.5)
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        after = sampler.log_prob(tokens.embed).exp()
    assert (after[rows, hard].sum(-1) > before[rows, hard].sum(-1)).all()
    others = torch.ones(4, 16, dtype=torch.bool)
    others[rows, hard] = False
    share = lambda p: p[rows, hard].mean(-1) / p[others].view(4, -1).mean(-1)  # noqa: E731
    assert (share(after) > share(before)).all()


def test_absent_samples_are_skipped_and_counted():
    logits, target, prediction = example()
    log_prob = torch.log_softmax(logits, -1)
    loss_both, _ = AdaptiveMaskingLoss()({"video": output(log_prob, prediction, target)}, {})
    loss_one, logs = AdaptiveMaskingLoss()({"video": output(log_prob, prediction, target, present=(False, True))}, {})
    only_second = output(log_prob[1:], prediction[1:], target[1:], KEEP[1:], PREDICT[1:])
    assert torch.isclose(loss_one, AdaptiveMaskingLoss()({"video": only_second}, {})[0])
    assert not torch.isclose(loss_one, loss_both)
    assert logs["video_adaptive_masking_skipped"] == 1
    with pytest.raises(ValueError, match=r"video_adaptive_masking: samples \[7\] lack"):
        AdaptiveMaskingLoss(strict=True)({"video": output(log_prob, prediction, target, present=(False, True))},
                                         {"index": torch.tensor([7, 8])})


def test_a_masker_without_log_prob_names_the_objective_and_the_binding():
    logits, target, prediction = example()
    out = output(torch.log_softmax(logits, -1), prediction, target)
    out.plan.aux = {}
    with pytest.raises(ValueError, match=r"video_adaptive_masking: AdaptiveMaskingLoss needs .*aux keys \[\]; "
                                         r"bind video/Modality\.masker = @video/AdaptiveMasking\(\)"):
        AdaptiveMaskingLoss()({"video": out}, {})


def test_the_error_is_against_the_decoders_own_target_when_it_gives_one():
    logits, target, prediction = example()
    log_prob = torch.log_softmax(logits, -1)
    own = torch.randn(2, 4, 2, generator=torch.Generator().manual_seed(1))
    out = output(log_prob, prediction, target)
    out.prediction_target = own
    loss, _ = AdaptiveMaskingLoss()({"video": out}, {})
    error = (prediction.detach() - own).pow(2).mean(dim=-1)
    expected = -(torch.gather(log_prob, 1, PREDICT) * error).mean(dim=1).mean()
    torch.testing.assert_close(loss, expected)
