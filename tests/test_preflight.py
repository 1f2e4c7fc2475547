"""`mmmae preflight` on 2 CPU processes (gloo), launched as training is (tests/test_distributed.py)."""

import os
import subprocess
import sys
from pathlib import Path

from mmmae.preflight import differences, source_hash, table
from tests.conftest import MICRO_GIN

REPO = Path(__file__).parents[1]


def launch(*words: str, **odd: str) -> subprocess.CompletedProcess:
    """`mmmae preflight WORDS` on 2 processes; odd: ODD_RANK / ODD_PARAM / ODD_SLEEP for tests/preflight_launch.py."""
    env = dict(os.environ, ACCELERATE_USE_CPU="1", OMP_NUM_THREADS="1", **odd)
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "-m", "tests.preflight_launch", "--gin_file", MICRO_GIN, *words]
    return subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)


def test_two_processes_that_agree_print_one_table_and_exit_0():
    result = launch("--data")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("2 processes on 1 host met (gloo)") == 1  # rank 0 prints
    rows = [line.split()[0] for line in result.stdout.splitlines() if line.split()[:1] in (["0"], ["1"])]
    assert rows == ["0", "1"]
    assert "data: MovingDigits" in result.stdout and "all processes agree" in result.stdout


def test_a_rank_with_another_config_fails_naming_it_and_the_binding():
    result = launch(ODD_RANK="1", ODD_PARAM="pretrain.steps = 7")
    assert result.returncode == 1
    assert "config: rank(s) 1 parsed another gin config than rank 0" in result.stderr
    assert "+pretrain.steps = 7" in result.stderr and "+++ rank 1" in result.stderr
    assert result.stderr.count("mmmae preflight:") == 1  # rank 0 reports (and exits 1); rank 1 ends quietly


def facts(rank: int, **changes: str) -> dict[str, str]:
    same = {"host": "a", "device": "cpu", "mmmae": "0.1.0", "source": "s", "commit": "c", "python": "3.11",
            "torch": "2.5", "accelerate": "1.16", "config": "h", "config_text": "x = 1"}
    return {**same, "rank": str(rank), **changes}


def test_differences_name_every_rank_that_differs_from_rank_0():
    gathered = [facts(0), facts(1, torch="2.4"), facts(2), facts(3, torch="2.4", source="t")]
    assert differences(gathered) == ["source: rank 0 has s, rank 3 t", "torch: rank 0 has 2.5, rank 1 2.4, rank 3 2.4"]
    assert differences(gathered[:1] + gathered[2:3]) == []
    assert table(gathered[:2]).splitlines()[2].split()[:3] == ["1", "a", "cpu"]


def test_a_rank_that_does_not_come_is_reported_within_the_timeout():
    result = launch("--timeout", "2", ODD_RANK="1", ODD_SLEEP="120")  # the launcher stops rank 1 once rank 0 fails
    assert result.returncode == 1
    assert "mmmae preflight: rank 0: the processes did not all meet at 127.0.0.1:" in result.stderr
    assert "within 2 s" in result.stderr


def test_the_source_hash_follows_the_code_and_gin_files_only(tmp_path):
    (tmp_path / "gin").mkdir()
    (tmp_path / "model.py").write_text("x = 1\n")
    (tmp_path / "gin" / "base.gin").write_text("a.b = 1\n")
    before = source_hash(tmp_path)
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "model.cpython-311.py").write_text("cache")
    (tmp_path / "notes.txt").write_text("not code")
    assert source_hash(tmp_path) == before
    (tmp_path / "gin" / "base.gin").write_text("a.b = 2\n")
    assert source_hash(tmp_path) != before
