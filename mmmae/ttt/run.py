"""`mmmae ttt`: test-time training of a model along a stream (gin/eval/ttt.gin), written to a folder."""

import json
from collections.abc import Sequence
from pathlib import Path

import gin
import torch
from torch.utils.data import Dataset

from mmmae.config import OPERATIVE_CONFIG
from mmmae.eval.evaluate import load_source
from mmmae.gin_scan import without_gin_calls
from mmmae.model import MaskedAutoencoder
from mmmae.ttt.summary import summarize
from mmmae.ttt.walk import WalkSettings, task_index, walk

TTT_GIN = "eval/ttt.gin"
RECORDS, SUMMARY = "ttt.jsonl", "summary.json"


@gin.configurable(module="mmmae")
def test_time_train(model: MaskedAutoencoder, output_dir: str | Path, stream: Dataset | None = None,
                    task: str | None = None, window: int = 8, steps: int = 1, memory: str = "implicit",
                    include_current: bool = True, lr: float = 1e-4, weight_decay: float = 0.05,
                    clip_grad: float | None = None, seed: int = 0, parts: int = 4,
                    trained_steps: int | None = None) -> dict:
    """Walk `stream` with `model` (see walk.WalkSettings for window ... seed; `task`: the
    Classification's name when the model has several; `trained_steps`: the model's config's
    pretrain.steps when None) and write to `output_dir`:
    ttt.jsonl (one record per item, walk.walk), summary.json (the settings and
    summary.summarize over the stream and its `parts` consecutive parts), config.gin.
    Returns the summary dict."""
    if trained_steps is None:
        trained_steps = configured_steps()
    settings = WalkSettings(window, steps, memory, include_current, lr, weight_decay, clip_grad, seed, trained_steps)
    if stream is None:
        raise ValueError(f"test_time_train.stream is unbound: bind a stream of labelled items, e.g. {TTT_GIN}'s "
                         "@ttt/DriftingStream()")
    if parts < 1:
        raise ValueError(f"test_time_train.parts = {parts}: the stream is scored in at least 1 part")
    if len(stream) < window:
        raise ValueError(f"the stream has {len(stream)} items, fewer than test_time_train.window = {window}: lengthen "
                         "the stream (train/MovingDigits.num_samples in eval/ttt.gin) or shorten the window")
    head = task_index(model, task)
    folder = Path(output_dir)
    if (folder / SUMMARY).exists():
        raise FileExistsError(f"{folder} already holds a test-time training run ({SUMMARY}): choose another "
                              "--output_dir")
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    with open(folder / RECORDS, "w") as lines:
        for record in walk(model, stream, head, settings):
            lines.write(json.dumps(record) + "\n")
            lines.flush()
            records.append(record)
    summary = {"settings": {**vars(settings), "task": model.objectives[head].name, "parts": parts},
               **summarize(records, parts)}
    (folder / SUMMARY).write_text(json.dumps(summary, indent=2))
    (folder / OPERATIVE_CONFIG).write_text(gin.operative_config_str())
    return summary


def configured_steps() -> int:
    """pretrain.steps as the parsed config (the model's config.gin) binds it; 0 where it does not."""
    try:
        return int(gin.query_parameter("pretrain.steps"))
    except ValueError:
        return 0


def run_ttt(source: str | Path, output_dir: str | Path, gin_files: Sequence[str] = (),
            gin_params: Sequence[str] = ()) -> dict:
    """`test_time_train` on the model of `source` (a run or pretrained folder or zoo name: `load_source`),
    configured by its config.gin, then eval/ttt.gin, then `gin_files` and `gin_params`. On the GPU
    when there is one."""
    files, model, _ = load_source(source, [TTT_GIN, *gin_files], gin_params)
    if files.metadata.get("encoder_only"):
        raise ValueError(f"{source} is an encoder-only export: its task head and decoders were left out, so test-time "
                         "training would predict with an untrained head; give the run folder or a full export")
    model.to("cuda" if torch.cuda.is_available() else "cpu")
    try:
        summary = test_time_train(model, output_dir)
    except (ValueError, FileExistsError) as error:  # gin's proxy of it, with its call lines appended
        kind = FileExistsError if isinstance(error, FileExistsError) else ValueError
        raise kind(without_gin_calls(error)) from None
    return {"source": str(source), "output_dir": str(output_dir), **summary}
