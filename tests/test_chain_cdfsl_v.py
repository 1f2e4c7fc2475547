"""chains/cdfsl_v.gin: CDFSL-V's three stages and the source-only baseline, then few-shot on the target."""

import json
from pathlib import Path

from mmmae.chain import run_chain

MICRO_OVERRIDES = str(Path(__file__).parent / "fixtures" / "micro_overrides.gin")


def test_the_cdfsl_v_chain_trains_its_stages_and_scores_both_arms_on_the_target(tmp_path):
    fast = ["pretrain.steps = 2", "pretrain.warmup_steps = 1", "few_shot/MovingDigits.num_samples = 120",
            "FewShot.episodes = 3", "FewShot.queries = 5"]
    summaries = run_chain(tmp_path, ["chains/cdfsl_v.gin"],
                          [f"chain.every_stage_files = ['{MICRO_OVERRIDES}']", f"chain.every_stage_params = {fast}"])
    assert [Path(s["run_dir"]).name for s in summaries] == [
        "both", "supervised", "curriculum", "few_shot", "source_only", "source_only_few_shot"]
    curriculum = json.loads((tmp_path / "curriculum" / "init_from.json").read_text())
    assert curriculum["source"] == str(tmp_path / "supervised")
    assert curriculum["kept"] == [] and "objectives.0.head.weight" in curriculum["loaded"]  # stage 2's head too
    supervised = (tmp_path / "supervised" / "metrics.jsonl").read_text().splitlines()
    assert "video_label_classification" in json.loads(supervised[-1])  # stage 2 trains the supervised head
    for stage, model in (("few_shot", "curriculum"), ("source_only_few_shot", "source_only")):
        summary = json.loads((tmp_path / stage / "summary.json").read_text())
        assert summary["source"] == str(tmp_path / model)
        [entry] = summary["evaluations"]
        assert entry["kind"] == "few_shot" and {"pretrained", "random_init"} <= set(entry)
        assert entry["pretrained"]["classes"] == [5, 6, 7, 8, 9]  # the target's held-out classes only
        assert len(entry["pretrained"]["scores"]) == 4
