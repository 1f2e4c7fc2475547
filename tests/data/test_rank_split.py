"""Every process reads its own shards of a stream (mmmae/data/rank_split.py), through the trainer."""

import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from torch.utils.data import IterableDataset

from mmmae.config import ConfigError
from mmmae.data.media.layouts import class_folder
from mmmae.data.media.shards import stream_shards, write_shards
from mmmae.data.media.synthetic import write_demo_media
from mmmae.data.rank_split import own_part, split_shards
from tests.test_train import MICRO_OVERRIDES

REPO = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """A demo tree of 8 train clips and its 4 shards of 2 clips."""
    root = write_demo_media(tmp_path_factory.mktemp("media"), train_clips=8, test_clips=4)
    shards = write_shards(class_folder(root / "train", audio_in_video=True), root / "shards", 2)
    assert len(shards) == 4
    return root, shards


def members(rows) -> list[str]:
    return [row["shard_member"] for row in rows]


def test_two_ranks_of_mmmae_train_read_disjoint_rows_of_their_own_shards_covering_the_set(media, tmp_path):
    root, shards = media
    everything = members(stream_shards(shards))
    bindings = [f"MEDIA_TRAIN = '{root / 'train'}'", f"MEDIA_TEST = '{root / 'test'}'",
                f"MEDIA_SHARDS = '{root / 'shards'}'", "SHARD_SAMPLES = 8", "FRAMES = 8", "STRIDE = 1",
                "FRAME_SIZE = 16", "pretrain.num_workers = 2", "pretrain.batch_size = 2", "pretrain.steps = 2",
                "pretrain.log_every = 1"]  # 4 rows a rank: one epoch of 2 steps
    words = [w for f in ["recipes/videomae_folder.gin", "data/media_shards.gin", str(MICRO_OVERRIDES)]
             for w in ("--gin_file", f)] + [w for b in bindings for w in ("--gin_param", b)]
    env = dict(os.environ, ACCELERATE_USE_CPU="1", OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "-m", "tests.data.rank_reads", str(tmp_path), *words, "--output_dir", str(tmp_path / "run")]
    result = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]

    read = defaultdict(list)  # rank -> the shard members its loader workers decoded
    for notes in tmp_path.glob("reads-*.txt"):
        for line in notes.read_text().splitlines():
            rank, member = line.split(" ", 1)
            read[int(rank)].append(member)
    assert sorted(read) == [0, 1] and all(len(rows) == 4 for rows in read.values())
    assert not set(read[0]) & set(read[1]) and sorted(read[0] + read[1]) == sorted(everything)
    shards_of = {rank: {member.split("#")[0] for member in rows} for rank, rows in read.items()}
    assert len(shards_of[0]) == len(shards_of[1]) == 2 and not shards_of[0] & shards_of[1]  # whole shards each

    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]
    for record in records:
        for name in ("data_wait_s", "samples_per_s"):
            assert all(record[f"{name}/rank{rank}"] > 0 for rank in (0, 1))


def test_shards_that_do_not_divide_are_split_by_rows_disjointly(media, caplog):
    _, shards = media
    three = stream_shards(shards[:3])
    with caplog.at_level("WARNING"):
        parts = [members(split_shards(three, rank, 2, workers=1)) for rank in (0, 1)]
    assert "3 shards do not divide among 2 processes" in caplog.text
    assert not set(parts[0]) & set(parts[1]) and sorted(parts[0] + parts[1]) == sorted(members(three))
    assert {len(part) for part in parts} == {3}


def test_too_few_shards_for_the_loader_workers_names_pretrain_num_workers(media):
    _, shards = media
    with pytest.raises(ConfigError, match=r"pretrain.num_workers = 3 on 2 processes: the stream has 4 shards, 2 for "
                                          r"each process's loader workers.*at least 6 shards"):
        split_shards(stream_shards(shards), 0, 2, workers=3)


class Counting(IterableDataset):
    def __iter__(self):
        yield from range(4)


def test_a_stream_that_cannot_split_itself_is_refused_on_several_processes():
    data = Counting()
    assert own_part(data, 0, 1, workers=0) is data
    with pytest.raises(ConfigError, match=r"pretrain.dataset: Counting is a stream .* without for_rank"):
        own_part(data, 0, 2, workers=0)
