"""Run by tests/data/test_rank_split.py under `accelerate launch` (2 CPU processes): `mmmae train`'s
pretrain on shards, each row a loader worker decodes recorded as a line "<RANK> <shard>#<key>" in
OUT/reads-<pid>.txt. Arguments: OUT, then --gin_file/--gin_param words as `mmmae train` takes them."""

import os
import sys

import torch

from mmmae.cli import build_parser
from mmmae.config import parse_config
from mmmae.data.media.streaming import StreamingMediaDataset
from mmmae.train import pretrain


def recorded(read, out: str):
    """StreamingMediaDataset.read_or_report, also noting each row read in a loader worker (training's reads)."""

    def read_and_note(self, row, index):
        if torch.utils.data.get_worker_info() is not None:
            with open(os.path.join(out, f"reads-{os.getpid()}.txt"), "a") as notes:
                notes.write(f"{os.environ['RANK']} {row['shard_member']}\n")
        return read(self, row, index)

    return read_and_note


if __name__ == "__main__":
    out, words = sys.argv[1], sys.argv[2:]
    args = build_parser().parse_args(["train", *words])
    StreamingMediaDataset.read_or_report = recorded(StreamingMediaDataset.read_or_report, out)
    parse_config(args.gin_file, args.gin_param)
    pretrain(output_dir=args.output_dir)
