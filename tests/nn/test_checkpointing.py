"""Activation checkpointing: the same loss and gradients, the blocks' forward rerun in backward."""

import pytest
import torch

from mmmae.nn.blocks import Block
from mmmae.nn.decoder import MaskTokenDecoder
from mmmae.nn.encoder import Encoder
from mmmae.types import MaskPlan


def encoder_loss(checkpointing: bool, present: torch.Tensor | None) -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    enc = Encoder(["video", "audio"], dim=16, depth=3, heads=2, fusion="mid", fusion_layers=1, specific_layers=1,
                  drop_path=0.5, checkpointing=checkpointing).train()
    g = torch.Generator().manual_seed(1)
    parts = {"video": torch.randn(3, 5, 16, generator=g), "audio": torch.randn(3, 3, 16, generator=g)}
    torch.manual_seed(2)  # drop path draws: the recomputed forward must draw the same
    out, _ = enc(parts, {m: present for m in parts})
    return enc, sum(x.sin().sum() for x in out.values())


def decoder_loss(checkpointing: bool) -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    dec = MaskTokenDecoder(in_dim=8, out_dim=5, dim=16, depth=2, heads=2, checkpointing=checkpointing).train()
    g = torch.Generator().manual_seed(1)
    plan = MaskPlan(keep=torch.tensor([[0, 2, 5], [1, 3, 4]]), predict=torch.tensor([[1, 3, 4], [0, 2, 5]]))
    return dec, dec(torch.randn(2, 3, 8, generator=g), (6,), plan).sin().sum()


BUILDS = {
    "encoder dense": lambda checkpointing: encoder_loss(checkpointing, None),
    "encoder packed": lambda checkpointing: encoder_loss(checkpointing, torch.ones(3, dtype=torch.bool)),
    "decoder": decoder_loss,
}


@pytest.mark.parametrize("build", BUILDS.values(), ids=BUILDS.keys())
def test_checkpointing_changes_neither_loss_nor_gradients(build):
    (plain, plain_loss), (checkpointed, checkpointed_loss) = build(False), build(True)
    plain_loss.backward()
    checkpointed_loss.backward()
    # exact: the rerun forward calls the same kernels on the same shapes and draws the same drop paths
    torch.testing.assert_close(checkpointed_loss, plain_loss, atol=0, rtol=0)
    for (name, p), q in zip(plain.named_parameters(), checkpointed.parameters(), strict=True):
        assert p.grad is not None, name
        torch.testing.assert_close(q.grad, p.grad, atol=0, rtol=0, msg=name)


# Block calls: the encoder's specific block once per modality, then densely its separate block once per
# modality and the joint one once, packed each shared block once over all modalities; the decoder's 2 blocks.
@pytest.mark.parametrize("build, blocks", [(BUILDS["encoder dense"], 2 + 2 + 1), (BUILDS["encoder packed"], 2 + 2),
                                           (BUILDS["decoder"], 2)], ids=BUILDS.keys())
@pytest.mark.parametrize("checkpointing", [False, True])
def test_checkpointed_blocks_run_again_in_backward(monkeypatch, build, blocks, checkpointing):
    calls = []
    forward = Block.forward
    monkeypatch.setattr(Block, "forward", lambda self, *args: calls.append(self) or forward(self, *args))
    _, loss = build(checkpointing)
    assert len(calls) == blocks
    loss.backward()
    assert len(calls) == blocks * (2 if checkpointing else 1)


def test_eval_mode_does_not_checkpoint(monkeypatch):
    calls = []
    forward = Block.forward
    monkeypatch.setattr(Block, "forward", lambda self, *args: calls.append(self) or forward(self, *args))
    torch.manual_seed(0)
    enc = Encoder(["video"], dim=16, depth=2, heads=2, checkpointing=True).eval()
    x = torch.randn(2, 4, 16, requires_grad=True)
    enc({"video": x}, {"video": None})[0]["video"].sum().backward()
    assert len(calls) == 2
