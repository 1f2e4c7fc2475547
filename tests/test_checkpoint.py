"""Checkpoint writes and reads that fail: DCP's CheckpointException (a BaseException) becomes mmmae's
clean errors, the partial folder removed."""

import errno

import pytest
import torch
from accelerate import Accelerator
from torch.distributed.checkpoint.api import CheckpointException

import mmmae.checkpoint
from mmmae.checkpoint import CheckpointWriteError, save_checkpoint
from mmmae.sharded_checkpoint import load_sharded_state


def test_a_failed_sharded_write_removes_its_partial_folder_and_names_the_disk(tmp_path, monkeypatch):
    def disk_full(accelerator, model, optimizer, folder):
        folder.mkdir(parents=True)
        (folder / "half_written").write_bytes(b"0")
        no_space = OSError(errno.ENOSPC, "No space left on device")
        raise CheckpointException("save failed", {0: (no_space, None)})

    monkeypatch.setattr(mmmae.checkpoint, "is_sharded", lambda model: True)
    monkeypatch.setattr(mmmae.checkpoint, "save_sharded_state", disk_full)
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    with pytest.raises(CheckpointWriteError, match="no space left on .*checkpoints to write checkpoint step_00000003"):
        save_checkpoint(Accelerator(cpu=True), model, tmp_path, 3, schedule, optimizer=optimizer)
    assert not list((tmp_path / "checkpoints").iterdir())


def test_unreadable_shards_are_a_value_error_naming_the_folder(tmp_path):
    folder = tmp_path / "step_00000003"
    (folder / "pytorch_model_fsdp_0").mkdir(parents=True)  # no .metadata: DCP's read fails
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=f"{folder}: its sharded state cannot be read"):
        load_sharded_state(Accelerator(cpu=True), model, optimizer, folder)


def test_a_latest_pointer_naming_a_missing_checkpoint_is_one_message_naming_the_complete_ones(tmp_path):
    from mmmae.checkpoint import CheckpointLoadError, latest_checkpoint

    folder = tmp_path / "checkpoints"
    (folder / "step_00000006").mkdir(parents=True)
    (folder / "step_00000006" / "trainer_state.json").write_text('{"step": 6}')
    (folder / "latest").write_text("step_00000003")
    with pytest.raises(CheckpointLoadError, match=r"names .*step_00000003, which is not a complete checkpoint.*"
                                                  r"\(step_00000006\)"):
        latest_checkpoint(tmp_path)
