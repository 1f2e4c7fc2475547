"""--resume's config check (mmmae.train.prepare_run_dir): a parameter added to mmmae since the run was
made resumes at its default; any other difference is refused."""

import pytest

from mmmae.config import parse_config
from mmmae.train import RunDirError, prepare_run_dir
from tests.conftest import MICRO_GIN

CONFIG = """# Parameters for pretrain:
# ==============================================================================
pretrain.adaptive_batch = None
pretrain.base_lr = 0.0015
pretrain.betas = \\
    (0.9, 0.95)
pretrain.steps = 6
"""


def saved_run(tmp_path, config: str):
    (tmp_path / "config.gin").write_text(config)
    return tmp_path


def test_a_saved_config_without_a_new_parameter_at_its_default_resumes(tmp_path):
    parse_config([MICRO_GIN], [])  # pretrain.adaptive_batch unbound: its default
    run = saved_run(tmp_path, CONFIG.replace("pretrain.adaptive_batch = None\n", ""))
    assert prepare_run_dir(run, True, CONFIG, steps=6) is None


def test_a_new_parameter_bound_away_from_its_default_is_refused(tmp_path):
    parse_config([MICRO_GIN], ["pretrain.adaptive_batch = @AdaptiveBatch"])
    run = saved_run(tmp_path, CONFIG.replace("pretrain.adaptive_batch = None\n", ""))
    config = CONFIG.replace("pretrain.adaptive_batch = None", "pretrain.adaptive_batch = @AdaptiveBatch")
    with pytest.raises(RunDirError, match=r"different config(.|\n)*\+pretrain.adaptive_batch = @AdaptiveBatch"):
        prepare_run_dir(run, True, config, steps=6)


def test_a_changed_value_is_still_refused(tmp_path):
    parse_config([MICRO_GIN], [])
    run = saved_run(tmp_path, CONFIG.replace("pretrain.adaptive_batch = None\n", ""))
    config = CONFIG.replace("(0.9, 0.95)", "(0.9, 0.99)")
    with pytest.raises(RunDirError, match=r"different config(.|\n)*-    \(0.9, 0.95\)(.|\n)*\+    \(0.9, 0.99\)"):
        prepare_run_dir(run, True, config, steps=6)
