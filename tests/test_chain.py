"""`mmmae chain`: stages in order, each in its own folder; resumable; finished stages skipped."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mmmae.chain import run_chain
from mmmae.config import ConfigError
from tests.conftest import MICRO_GIN
from tests.interrupt import run_until_interrupted

MICRO_OVERRIDES = str(Path(__file__).parent / "fixtures" / "micro_overrides.gin")
# Two micro stages: 'a' of 4 steps, then 'b' of 6 that starts from 'a''s weights.
TWO_STAGES = ["chain.stages = [@a/Stage(), @b/Stage()]",
              "a/Stage.name = 'a'", f"a/Stage.gin_files = ['{MICRO_GIN}']",
              "a/Stage.gin_params = ['pretrain.steps = 4']",
              "b/Stage.name = 'b'", f"b/Stage.gin_files = ['{MICRO_GIN}']", "b/Stage.init_from = '${a}'",
              "chain.every_stage_params = ['pretrain.log_every = 1']"]


def chain_file(tmp_path: Path, lines: list[str]) -> str:
    path = tmp_path / "chain.gin"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_the_shipped_videoprism_chain_runs_its_three_stages(tmp_path):
    fast = ["evaluations.probes = []", "evaluations.knn = []", "evaluations.retrievals = []",
            "probe_train/finetune/MovingDigits.num_samples = 16", "probe_test/finetune/MovingDigits.num_samples = 8",
            "FineTune.epochs = 1"]
    summaries = run_chain(tmp_path, ["chains/videoprism.gin"],
                          [f"chain.every_stage_files = ['{MICRO_OVERRIDES}']", f"chain.every_stage_params = {fast}"])
    assert [Path(s["run_dir"]).name for s in summaries] == ["contrastive", "distill", "finetune"]
    finetune = json.loads((tmp_path / "finetune" / "summary.json").read_text())
    assert finetune["source"] == str(tmp_path / "distill")
    assert [e["kind"] for e in finetune["evaluations"]] == ["finetune"]
    assert {"pretrained", "random_init"} <= set(finetune["evaluations"][0])
    recorded = json.loads((tmp_path / "chain.json").read_text())["stages"]
    assert [s["name"] for s in recorded] == ["contrastive", "distill", "finetune"]
    assert recorded[1]["gin_params"][0] == f"TEACHER = '{tmp_path / 'contrastive'}'"  # stage 1's run is the teacher


def test_an_interrupted_chain_resumes_its_stage_exactly_and_skips_finished_ones(tmp_path, monkeypatch):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    run_chain(whole, [chain_file(tmp_path, TWO_STAGES)])
    # Stage b stops after its step 5 (its checkpoint is at step 3); stage a has finished by then.
    calls = []
    original = run_chain.__globals__["pretrain"]

    def pretrain_b_interrupted(output_dir, resume):
        calls.append((Path(output_dir).name, resume))
        return original(output_dir=output_dir, resume=resume)

    monkeypatch.setitem(run_chain.__globals__, "pretrain", pretrain_b_interrupted)
    run_until_interrupted(lambda: run_chain(cut, [chain_file(tmp_path, TWO_STAGES)]), monkeypatch)
    a_summary = (cut / "a" / "summary.json").stat().st_mtime_ns
    run_chain(cut, [chain_file(tmp_path, TWO_STAGES)])
    assert calls == [("a", False), ("b", False), ("b", True)]  # a ran once, b resumed
    assert (cut / "a" / "summary.json").stat().st_mtime_ns == a_summary
    expected = load_file(str(whole / "b" / "model.safetensors"))
    resumed = load_file(str(cut / "b" / "model.safetensors"))
    assert all(torch.equal(expected[k], resumed[k]) for k in expected)
    assert (cut / "b" / "metrics.jsonl").read_text() != "" and json.loads(
        (cut / "b" / "init_from.json").read_text())["source"] == str(cut / "a")


def test_a_reference_to_a_later_or_unknown_stage_names_the_stage(tmp_path):
    lines = [*TWO_STAGES, "b/Stage.init_from = '${c}'"]  # the later binding wins
    with pytest.raises(ConfigError, match=r"stage 'b': Stage.init_from names \$\{c\}, which is not an earlier stage "
                                          r"\(earlier: a\)"):
        run_chain(tmp_path / "chain", [chain_file(tmp_path, lines)])
    assert not (tmp_path / "chain").exists()


def test_a_stage_whose_init_from_does_not_exist_is_named(tmp_path):
    lines = [*TWO_STAGES, f"b/Stage.init_from = '{tmp_path / 'missing'}'"]
    with pytest.raises(ConfigError, match=rf"(?s)stage 'b' \({tmp_path / 'chain' / 'b'}\): .*pretrain.init_from = "):
        run_chain(tmp_path / "chain", [chain_file(tmp_path, lines)])
    assert not (tmp_path / "chain" / "b").exists()


def test_changing_a_started_stage_is_refused(tmp_path):
    run_chain(tmp_path / "chain", [chain_file(tmp_path, TWO_STAGES)])
    with pytest.raises(ConfigError, match="stage 'a' of .* was started with another spec"):
        run_chain(tmp_path / "chain", [chain_file(tmp_path, TWO_STAGES)],
                  ["a/Stage.gin_params = ['pretrain.seed = 1']"])


def test_stage_names_must_be_folder_names_and_distinct(tmp_path):
    with pytest.raises(ConfigError, match="repeated: a"):
        run_chain(tmp_path, [chain_file(tmp_path, [*TWO_STAGES, "b/Stage.name = 'a'"])])
    with pytest.raises(ConfigError, match="Stage.name = '../x': a stage name is a folder name"):
        run_chain(tmp_path, [chain_file(tmp_path, [*TWO_STAGES, "b/Stage.name = '../x'"])])


def test_a_folder_holding_a_training_run_is_refused(tmp_path):
    run_chain(tmp_path / "chain", [chain_file(tmp_path, TWO_STAGES)])
    with pytest.raises(ConfigError, match="holds a training run .*choose another --output_dir"):
        run_chain(tmp_path / "chain" / "a", [chain_file(tmp_path, TWO_STAGES)])
    assert not (tmp_path / "chain" / "a" / "chain.json").exists()
