"""A launch whose processes did not form one group (torchrun on a CPU machine without ACCELERATE_USE_CPU=1)
is refused before anything is written, instead of every process training alone into one folder."""

import pytest

from mmmae.config import ConfigError, parse_config
from mmmae.train import pretrain
from tests.conftest import MICRO_GIN


def test_more_launched_processes_than_joined_the_group_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    parse_config([MICRO_GIN])
    refusal = r"started 2 processes \(WORLD_SIZE\).*Accelerate sees 1.*ACCELERATE_USE_CPU=1"
    with pytest.raises(ConfigError, match=refusal):
        pretrain(output_dir=str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()
