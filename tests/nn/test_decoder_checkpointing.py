"""Activation checkpointing in the model-level decoders (shared, joint, cross-view): the same
predictions and gradients, the blocks' forward rerun in backward, none in eval mode."""

import pytest
import torch

from mmmae.nn.blocks import Block
from mmmae.nn.cross_decoder import CrossSelfBlock, CrossViewDecoder
from mmmae.nn.joint_decoder import JointDecoder
from mmmae.nn.shared_decoder import SharedDecoder
from tests.nn.test_joint_decoder import inputs, modalities

# name: (build with a `checkpointing` keyword, the block class, block calls in one forward)
DECODERS = {
    "shared": (lambda **kw: SharedDecoder(modalities(), dim=8, depth=2, heads=2, **kw), Block, 2 * 2),
    "joint": (lambda **kw: JointDecoder(modalities(), dim=8, depth=2, heads=2, **kw), Block, 2),
    "joint cross-modal": (lambda **kw: JointDecoder(modalities(), dim=8, depth=2, heads=2, cross_modal=True, **kw),
                          Block, 2 * 2),
    "cross-view": (lambda **kw: CrossViewDecoder(modalities(), context="audio", target="video", dim=8, depth=2,
                                                 heads=2, dropout=0.2, **kw), CrossSelfBlock, 2),
}


def loss(build, checkpointing: bool) -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    decoder = build(checkpointing=checkpointing).train()
    encoded, tokens, plans, present = inputs()
    encoded = {m: x.requires_grad_() for m, x in encoded.items()}
    torch.manual_seed(1)  # dropout draws: the recomputed forward must draw the same
    out = decoder(encoded, tokens, plans, present)
    return decoder, sum(x.sin().sum() for x in out.values())


@pytest.mark.parametrize("name", DECODERS)
def test_checkpointing_changes_neither_predictions_nor_gradients(name):
    build = DECODERS[name][0]
    (plain, plain_loss), (checkpointed, checkpointed_loss) = loss(build, False), loss(build, True)
    plain_loss.backward()
    checkpointed_loss.backward()
    # exact: the rerun forward calls the same kernels on the same shapes and draws the same dropout
    torch.testing.assert_close(checkpointed_loss, plain_loss, atol=0, rtol=0)
    for (key, p), q in zip(plain.named_parameters(), checkpointed.parameters(), strict=True):
        if p.grad is not None or q.grad is not None:
            torch.testing.assert_close(q.grad, p.grad, atol=0, rtol=0, msg=key)


@pytest.mark.parametrize("name", DECODERS)
@pytest.mark.parametrize("checkpointing", [False, True])
def test_checkpointed_blocks_run_again_in_backward(monkeypatch, name, checkpointing):
    build, block, blocks = DECODERS[name]
    calls = []
    forward = block.forward
    monkeypatch.setattr(block, "forward", lambda self, *args: calls.append(self) or forward(self, *args))
    _, total = loss(build, checkpointing)
    assert len(calls) == blocks
    total.backward()
    assert len(calls) == blocks * (2 if checkpointing else 1)


@pytest.mark.parametrize("name", DECODERS)
def test_eval_mode_does_not_checkpoint(monkeypatch, name):
    build, block, blocks = DECODERS[name]
    calls = []
    forward = block.forward
    monkeypatch.setattr(block, "forward", lambda self, *args: calls.append(self) or forward(self, *args))
    decoder = build(checkpointing=True).eval()
    encoded, tokens, plans, present = inputs()
    encoded = {m: x.requires_grad_() for m, x in encoded.items()}
    sum(x.sum() for x in decoder(encoded, tokens, plans, present).values()).backward()
    assert len(calls) == blocks
