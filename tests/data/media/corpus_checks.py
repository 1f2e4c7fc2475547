"""The ways a user meets a case of the broken-input corpus (tests/data/media/broken_corpus.py): `mmmae
validate` on it, a training epoch and an evaluation pass over a MediaDataset of it, and `mmmae train`
on it; all configured alike (gin/data/media_folder.gin's dataset, small)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import NamedTuple

import torch

from mmmae.cli import main
from mmmae.data.media.clip_sampling import DenseSampling
from mmmae.data.media.dataset import MediaDataset
from mmmae.data.media.layouts import class_folder, manifest
from mmmae.data.moving_digits.modalities.imu import DEFAULT_IMU_RATES
from tests.data.media.broken_corpus import Case, Kind

MODALITIES = ("video", "audio", "imu", "text")
FRAMES, STRIDE, BATCH = 4, 2, 2
CORPUS_GIN = """
pretrain.dataset = @train/MediaDataset
train/MediaDataset.source = {source}
MediaDataset.modalities = {modalities}
MediaDataset.imu_rates = {rates}
MediaDataset.sampling = @DenseSampling()
DenseSampling.frames = {frames}
DenseSampling.stride = {stride}
"""
SOURCE_GIN = {"manifest": "@train/manifest\ntrain/manifest.path = '{path}'",
              "class_folder": "@train/class_folder\ntrain/class_folder.root = '{path}'\n"
                              "class_folder.audio_in_video = True"}


class Pass(NamedTuple):
    """One pass over a dataset as the trainer and evaluators make it: the samples' (index, {modality:
    present}) in batch order, the summed bad_samples and left_out."""

    samples: list[tuple[int, dict[str, bool]]]
    bad_samples: int
    left_out: int


def dataset(kind: Kind, case: Case, train: bool) -> MediaDataset:
    """The case as a training (random clips) or evaluation (centred clips) MediaDataset."""
    if kind.layout == "class_folder":
        rows = class_folder(case.source, audio_in_video=True)
    else:
        rows = manifest(case.source)
    sampling = DenseSampling(FRAMES, STRIDE, mode="random" if train else "center")
    return MediaDataset(rows, modalities=MODALITIES, sampling=sampling, imu_rates=dict(DEFAULT_IMU_RATES), train=train)


def one_pass(data: MediaDataset) -> Pass:
    """Every batch of ``data`` (batches of BATCH through its collate), as :class:`Pass`."""
    loader = torch.utils.data.DataLoader(data, batch_size=BATCH, collate_fn=data.collate)
    samples, bad, left_out = [], 0, 0
    for batch in loader:
        left_out += int(batch.pop("left_out", 0))
        bad += int(batch["bad_samples"].sum()) if "bad_samples" in batch else 0
        for i, index in enumerate(batch.get("index", torch.zeros(0)).tolist()):
            samples.append((index, {m: bool(batch[f"{m}_present"][i]) for m in MODALITIES}))
    return Pass(samples, bad, left_out)


def run_cli(*argv: str) -> tuple[int, str]:
    """`mmmae ARGV` in this process: (exit status, its stdout, stderr and exit message)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            main(list(argv))
            status = 0
        except SystemExit as stop:
            status = stop.code if isinstance(stop.code, int) or stop.code is None else 1
            if isinstance(stop.code, str):
                out.write(stop.code)
    return status or 0, out.getvalue()


def validate(kind: Kind, case: Case, folder: Path) -> tuple[int, str, list[dict] | None]:
    """`mmmae validate --gin_file` of the case as CORPUS_GIN configures it, files in ``folder``:
    (exit status, output, the JSON report's problems, None if it wrote no report)."""
    settings, report = folder / "corpus.gin", folder / "report.json"
    source = SOURCE_GIN[kind.layout].format(path=case.source)
    settings.write_text(CORPUS_GIN.format(source=source, modalities=list(MODALITIES), rates=dict(DEFAULT_IMU_RATES),
                                          frames=FRAMES, stride=STRIDE))
    status, output = run_cli("validate", "--gin_file", str(settings), "--report", str(report))
    if not report.exists():
        return status, output, None
    reports = json.loads(report.read_text())
    return status, output, [problem for entry in reports for problem in entry.get("problems", [])]


def train(case: Case, run: Path) -> tuple[int, str]:
    """`mmmae train` of the quickstart media recipe on the case's manifest into ``run``."""
    return run_cli("train", "--gin_file", "recipes/quickstart_media.gin",
                   "--gin_param", f"MEDIA_TRAIN = '{case.source.parent}'",
                   "--gin_param", f"MEDIA_TEST = '{case.source.parent}'",
                   "--gin_param", "train/MediaDataset.source = @train/manifest",
                   "--gin_param", f"train/manifest.path = '{case.source}'",
                   "--output_dir", str(run))
