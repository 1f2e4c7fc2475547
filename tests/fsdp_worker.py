"""One rank of a 2-process FSDP test run: `mmmae train` with what FSDP made of the model recorded.

Launched by tests/test_fsdp.py through `accelerate launch -m tests.fsdp_worker train <mmmae train args>`.
FSDP_PROBE=<file>: the main process writes there, as JSON, whether the model was sharded, whether
every parameter is a DTensor, and the share of the parameters this rank holds. FSDP_KILL_AT=<step>:
every rank exits at once (os._exit, no cleanup, as a kill) right after that step is logged.
"""

import json
import os
import sys

from torch.distributed.tensor import DTensor

import mmmae.train
from mmmae.cli import main


def recording_shard(accelerator, model, mixed_precision) -> bool:
    sharded = SHARD(accelerator, model, mixed_precision)
    if accelerator.is_main_process and "FSDP_PROBE" in os.environ:
        params = list(model.parameters())
        local = sum(p.to_local().numel() if isinstance(p, DTensor) else p.numel() for p in params)
        with open(os.environ["FSDP_PROBE"], "w") as f:
            json.dump({"sharded": sharded, "all_dtensor": all(isinstance(p, DTensor) for p in params),
                       "local_share": local / sum(p.numel() for p in params)}, f)
    return sharded


def killing_log(accelerator, run_dir, step, *args):
    record = LOG(accelerator, run_dir, step, *args)
    if step == int(os.environ.get("FSDP_KILL_AT", "0")):
        os._exit(3)
    return record


SHARD, LOG = mmmae.train.shard_on_cpu, mmmae.train.log_metrics
mmmae.train.shard_on_cpu, mmmae.train.log_metrics = recording_shard, killing_log

if __name__ == "__main__":
    main(sys.argv[1:])
