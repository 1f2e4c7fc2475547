"""Chains of stages (`mmmae chain`): several runs one after another, each in its own folder.

A chain file (gin/chains/*.gin) binds `chain.stages` to a list of `Stage`s. A stage trains
(`kind='train'`: `pretrain` from its gin files and bindings) or evaluates (`kind='eval'`: the
evaluations of its gin files on `model`, e.g. eval/finetune.gin). `${name}` in a stage's
bindings, `model` or `init_from` stands for the folder of the earlier stage `name`, so stage 2's
teacher or starting weights can be stage 1's run. The chain's folder holds `chain.json` and one
folder per stage; running the chain again skips finished stages (their summary.json exists) and
resumes an interrupted one from its latest checkpoint, exactly as `mmmae train --resume` does.
"""

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

import gin

from mmmae.checkpoint import latest_checkpoint
from mmmae.config import OPERATIVE_CONFIG, ConfigError, parse_config
from mmmae.eval.evaluate import evaluate_run
from mmmae.gin_scan import without_gin_calls
from mmmae.train import RunDirError, pretrain

KINDS = ("train", "eval")
NAME = re.compile(r"[A-Za-z_][\w-]*")
REFERENCE = re.compile(r"\$\{([^}]*)\}")
CHAIN_FILE = "chain.json"


@gin.configurable(module="mmmae")
class Stage:
    """One stage: `name` (its folder), its own `gin_files` and `gin_params` (parsed afresh for it),
    `kind` 'train' or 'eval'. An eval stage evaluates `model` (a run, pretrained folder, zoo name or
    `${stage}`), with `random_init` also at its initialisation; a train stage may start from
    `init_from`'s weights (`pretrain.init_from`)."""

    def __init__(self, name: str = gin.REQUIRED, gin_files: Sequence[str] = (), gin_params: Sequence[str] = (),
                 kind: str = "train", model: str | None = None, init_from: str | None = None,
                 random_init: bool = False):
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise ConfigError(f"Stage.name = {name!r}: a stage name is a folder name of letters, digits, _ and -")
        if kind not in KINDS:
            raise ConfigError(f"stage {name!r}: Stage.kind = {kind!r}; use one of {', '.join(KINDS)}")
        if (kind == "eval") != (model is not None):
            raise ConfigError(f"stage {name!r}: Stage.model names the model an 'eval' stage evaluates; "
                              f"{'bind it' if kind == 'eval' else 'a train stage takes init_from instead'}")
        if kind == "eval" and init_from is not None:
            raise ConfigError(f"stage {name!r}: Stage.init_from applies to 'train' stages; an 'eval' stage "
                              "evaluates Stage.model")
        self.spec = {"name": name, "kind": kind, "gin_files": list(gin_files), "gin_params": list(gin_params),
                     "model": model, "init_from": init_from, "random_init": random_init}


@gin.configurable(module="mmmae")
def chain(stages: Sequence[Stage] = gin.REQUIRED, every_stage_files: Sequence[str] = (),
          every_stage_params: Sequence[str] = ()) -> list[dict]:
    """The stages' specs, in order, with the chain-wide files and bindings appended to each (after
    the stage's own, so they win: e.g. a smaller size for a trial of the whole chain)."""
    specs = []
    for stage in stages:
        spec = dict(stage.spec)
        spec["gin_files"] = [*spec["gin_files"], *every_stage_files]
        spec["gin_params"] = [*spec["gin_params"], *every_stage_params]
        specs.append(spec)
    names = [spec["name"] for spec in specs]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"chain.stages: stage names must differ (folders); repeated: {', '.join(repeated)}")
    if not specs:
        raise ConfigError("chain.stages is empty: bind it to a list of @name/Stage()")
    return specs


def resolved(spec: dict, folders: dict[str, Path]) -> dict:
    """The spec with each `${stage}` replaced by that earlier stage's folder (absolute)."""

    def substitute(text: str | None, where: str) -> str | None:
        if text is None:
            return None

        def folder(match: re.Match) -> str:
            if match.group(1) not in folders:
                earlier = ", ".join(folders) or "none: it is the first stage"
                raise ConfigError(f"stage {spec['name']!r}: {where} names ${{{match.group(1)}}}, which is not an "
                                  f"earlier stage (earlier: {earlier})")
            return str(folders[match.group(1)])

        return REFERENCE.sub(folder, text)

    out = dict(spec)
    out["gin_params"] = [substitute(p, f"the binding {p!r}") for p in spec["gin_params"]]
    out["model"] = substitute(spec["model"], "Stage.model")
    out["init_from"] = substitute(spec["init_from"], "Stage.init_from")
    return out


def record_chain(output_dir: Path, specs: list[dict]) -> None:
    """Write chain.json; a stage that has started (its folder exists) with another spec than the one
    recorded is refused, naming the stage and both specs (rerun it in another folder)."""
    path = output_dir / CHAIN_FILE
    if path.is_file():
        recorded = {s["name"]: s for s in json.loads(path.read_text())["stages"]}
        for spec in specs:
            before = recorded.get(spec["name"])
            if before is not None and before != spec and (output_dir / spec["name"]).exists():
                raise ConfigError(f"stage {spec['name']!r} of {output_dir} was started with another spec; recorded "
                                  f"{json.dumps(before)}, now {json.dumps(spec)}. Use another --output_dir, or "
                                  f"remove {output_dir / spec['name']} to run that stage anew")
    output_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps({"stages": specs}, indent=2))
    os.replace(partial, path)


def run_stage(spec: dict, folder: Path) -> dict:
    """Train or evaluate one stage into `folder`; returns its summary (also folder/summary.json)."""
    params = [*spec["gin_params"], *([f"pretrain.init_from = {spec['init_from']!r}"] if spec["init_from"] else [])]
    if spec["kind"] == "train":
        parse_config(spec["gin_files"], params)
        return pretrain(output_dir=str(folder), resume=latest_checkpoint(folder) is not None)
    summary = {**evaluate_run(spec["model"], spec["gin_files"], params, spec["random_init"]),
               "run_dir": str(folder)}
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / "summary.json.partial"
    partial.write_text(json.dumps(summary, indent=2))
    os.replace(partial, folder / "summary.json")
    return summary


def run_chain(output_dir: str | Path, gin_files: Sequence[str], gin_params: Sequence[str] = ()) -> list[dict]:
    """Every stage of the chain that `gin_files` and `gin_params` declare, in order, into
    output_dir/<stage>; finished stages are skipped (their summary is read back). Returns the summaries.
    A stage's failure is re-raised as a ConfigError (or the loop's own error) naming the stage."""
    output_dir = Path(output_dir).resolve()
    if (output_dir / OPERATIVE_CONFIG).exists() or latest_checkpoint(output_dir) is not None:
        raise ConfigError(f"{output_dir} holds a training run ({OPERATIVE_CONFIG}); a chain needs a folder of its "
                          "own (it writes chain.json and one folder per stage): choose another --output_dir")
    parse_config(gin_files, gin_params)
    specs = chain()
    folders: dict[str, Path] = {}
    resolved_specs = []
    for spec in specs:
        resolved_specs.append(resolved(spec, folders))
        folders[spec["name"]] = output_dir / spec["name"]
    record_chain(output_dir, resolved_specs)
    summaries = []
    for spec in resolved_specs:
        folder = folders[spec["name"]]
        done = folder / "summary.json"
        if done.is_file():
            print(f"stage {spec['name']}: finished earlier, skipped ({done})")
            summaries.append(json.loads(done.read_text()))
            continue
        print(f"stage {spec['name']} ({spec['kind']}): {folder}")
        try:
            summaries.append(run_stage(spec, folder))
        except (ConfigError, RunDirError, FileNotFoundError, FileExistsError, ValueError, KeyError) as error:
            message = without_gin_calls(error)  # a KeyError's str is its message quoted
            message = message[1:-1] if isinstance(error, KeyError) and message[:1] in "'\"" else message
            raise ConfigError(f"stage {spec['name']!r} ({folder}): {message}") from None
    return summaries
