"""Checkpoints of a sharded (FSDP2) model: torch.distributed.checkpoint (DCP) folders, read without pickle.

A sharded checkpoint folder holds `pytorch_model_fsdp_0/` (DCP: {"model": state dict}) and
`optimizer_0/` (DCP: {"optimizer": state dict}), the names Accelerate's own FSDP saving uses,
each rank writing its shards; beside them Accelerate's per-rank RNG states
(`random_states_<rank>.pkl`) and mmmae's `trainer_state.json`. mmmae/checkpoint.py writes the
folder whole-or-nothing (`.partial` + rename + `latest`) as for unsharded runs.

DCP keeps its index (`.metadata`) as a pickle and reads non-tensor values with an unrestricted
`torch.load`; here both go through restricted readers: the index may name
DCP's own metadata classes, torch sizes and dtypes and paths, nothing else, and values load with
`weights_only=True`. A sharded checkpoint consolidates on load into one full state dict
(`consolidated_state`) with no process group, for `mmmae export`, `mmmae eval` and the zoo loaders.
"""

import io
import pickle
from pathlib import Path

import torch
import torch.distributed.checkpoint as dcp
from accelerate import Accelerator
from accelerate.checkpointing import load_accelerator_state, save_accelerator_state
from torch.distributed.checkpoint._traverse import set_element
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner, _EmptyStateDictLoadPlanner
from torch.distributed.checkpoint.metadata import Metadata, StorageMeta
from torch.distributed.checkpoint.planner import ReadItem
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
from torch.distributed.checkpoint.state_dict_loader import _load_state_dict
from torch.distributed.tensor import DTensor

MODEL_SHARDS = "pytorch_model_fsdp_0"
OPTIMIZER_SHARDS = "optimizer_0"


def is_sharded(model: torch.nn.Module) -> bool:
    """Whether the model's parameters are DTensors (sharded by FSDP2)."""
    return any(isinstance(p, DTensor) for p in model.parameters())


def is_sharded_checkpoint(folder: Path) -> bool:
    """Whether `folder` holds a sharded model (a DCP folder of the model's shards)."""
    return (Path(folder) / MODEL_SHARDS / ".metadata").is_file()


class _IndexUnpickler(pickle.Unpickler):
    """Unpickles a DCP index: DCP's metadata classes, torch sizes, dtypes and layouts, paths; nothing else."""

    def find_class(self, module: str, name: str) -> object:
        if module.startswith("torch.distributed.checkpoint.") or (module, name) in (
                ("torch", "Size"), ("torch.serialization", "_get_layout"), ("collections", "OrderedDict"),
                ("pathlib", "PosixPath"), ("pathlib", "PurePosixPath"), ("pathlib", "WindowsPath")):
            return super().find_class(module, name)
        if module == "torch" and isinstance(getattr(torch, name, None), (torch.dtype, torch.layout)):
            return getattr(torch, name)
        raise pickle.UnpicklingError(f"the checkpoint index names {module}.{name}, which is not DCP metadata")


class SafeReader(dcp.FileSystemReader):
    """DCP's file reader with the index read by _IndexUnpickler instead of pickle.load."""

    def read_metadata(self, *args, **kwargs) -> Metadata:
        with self.fs.create_stream(self._get_metadata_path(kwargs.get("rank")), "rb") as stream:
            metadata = _IndexUnpickler(stream).load()
        if not isinstance(metadata, Metadata):
            raise pickle.UnpicklingError(f"{self.path}: its .metadata is not a DCP index")
        metadata.storage_meta = metadata.storage_meta or StorageMeta()
        metadata.storage_meta.load_id = self.load_id
        return metadata


class SafePlanner(DefaultLoadPlanner):
    """DCP's load planner, with non-tensor values (optimizer hyperparameters) read weights_only."""

    def load_bytes(self, read_item: ReadItem, value: io.BytesIO) -> None:
        loaded = torch.load(value, weights_only=True)
        if self.flatten_state_dict:
            set_element(self.original_state_dict, self.mappings[read_item.dest_index.fqn], loaded)
        else:
            self.state_dict[read_item.dest_index.fqn] = loaded


class _SafeEmptyPlanner(_EmptyStateDictLoadPlanner):
    """Loads every tensor a DCP folder holds into an empty dict (consolidation), values weights_only."""

    load_bytes = SafePlanner.load_bytes


def dcp_failure(error: CheckpointException) -> BaseException:
    """The first rank's own exception inside DCP's CheckpointException (an OSError for a full disk)."""
    failures = list(error.failures.values())
    return failures[0][0] if failures else error


def failure_reason(error: CheckpointException) -> str:
    """The first line of the first rank's own exception, in words."""
    failure = dcp_failure(error)
    return str(failure).splitlines()[0] if str(failure) else type(failure).__name__


def _unwrapped(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """The torch optimizer inside Accelerate's AcceleratedOptimizer (itself when it is one)."""
    return getattr(optimizer, "optimizer", optimizer)


def save_sharded_state(accelerator: Accelerator, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                       folder: Path) -> None:
    """Every rank writes its shards of model and optimizer into `folder`, and its RNG states (collective)."""
    model_state, optimizer_state = get_state_dict(model, _unwrapped(optimizer))
    dcp.save({"model": model_state}, checkpoint_id=Path(folder) / MODEL_SHARDS)
    dcp.save({"optimizer": optimizer_state}, checkpoint_id=Path(folder) / OPTIMIZER_SHARDS)
    save_accelerator_state(str(folder), [], [], [], [], accelerator.process_index, accelerator.step,
                           accelerator.scaler)
    accelerator.wait_for_everyone()  # every rank's files are in place before the folder is renamed


def load_sharded_state(accelerator: Accelerator, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                       folder: Path) -> None:
    """Every rank reads its shards of model and optimizer from `folder`, and its RNG states (collective);
    shards that cannot be read are a ValueError naming the folder."""
    optimizer = _unwrapped(optimizer)
    model_state, optimizer_state = get_state_dict(model, optimizer)
    state, optimizer_wrapped = {"model": model_state}, {"optimizer": optimizer_state}
    try:
        dcp.load(state, storage_reader=SafeReader(Path(folder) / MODEL_SHARDS), planner=SafePlanner())
        dcp.load(optimizer_wrapped, storage_reader=SafeReader(Path(folder) / OPTIMIZER_SHARDS), planner=SafePlanner())
    except CheckpointException as error:  # DCP's error (a BaseException) for any rank's failed read of the shards
        raise ValueError(f"{folder}: its sharded state cannot be read ({failure_reason(error)}). Resume only from "
                         "complete checkpoints you wrote") from None
    set_state_dict(model, optimizer, model_state_dict=state["model"],
                   optim_state_dict=optimizer_wrapped["optimizer"])
    restored = load_accelerator_state(str(folder), [], [], [], [], accelerator.process_index, accelerator.scaler)
    accelerator.step = restored.get("step", accelerator.step)


def consolidated_state(shards: Path) -> dict[str, torch.Tensor]:
    """The full model state dict of a checkpoint's model shards (its MODEL_SHARDS folder), read in this
    one process (no process group); a ValueError naming the folder when it cannot be read."""
    state: dict = {}
    try:
        _load_state_dict(state, storage_reader=SafeReader(shards), planner=_SafeEmptyPlanner(), no_dist=True)
    except (CheckpointException, pickle.UnpicklingError, OSError, RuntimeError, KeyError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"cannot read the sharded weights {shards}: {reason} (an incomplete or foreign checkpoint?)"
                         ) from None
    if not isinstance(state.get("model"), dict):
        raise ValueError(f"{shards} holds no model state (keys {sorted(state)})")
    return state["model"]
