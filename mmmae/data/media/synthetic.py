"""MovingDigits written out as real media files: mp4 (H.264 video + AAC audio), IMU CSV logs and
caption text, in the class-per-folder layout (UCF101 style) plus a JSONL manifest.

Tests and the data benchmark read these files through the same code path as a user's own
clips; a user can also make a small dataset to try a recipe on before pointing it at real data.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import av
import einops
import numpy as np
import pandas as pd

from mmmae.data.moving_digits.dataset import MovingDigits
from mmmae.data.moving_digits.modalities.text import DIGIT_WORDS

IMU_CHANNELS = ("ax", "ay", "az", "gx", "gy", "gz")


def write_mp4(
    path: str | os.PathLike,
    video: np.ndarray,
    fps: int,
    audio: np.ndarray | None = None,
    sample_rate: int = 16000,
    gop: int = 16,
) -> None:
    """Write video (C, T, H, W) float in [0, 1] (H, W even) as H.264 yuv420p at fps, keyframe every
    ``gop`` frames, and audio (S,) float in [-1, 1] as a mono AAC track at sample_rate."""
    frames = einops.rearrange(np.clip(np.rint(np.asarray(video) * 255), 0, 255).astype(np.uint8), "c t h w -> t h w c")
    with av.open(os.fspath(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"g": str(gop), "bf": "0", "crf": "18"})
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        sound = None
        if audio is not None:
            sound = container.add_stream("aac", rate=sample_rate, layout="mono")
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
        if sound is not None:
            wave = av.AudioFrame.from_ndarray(np.asarray(audio, np.float32)[None], format="fltp", layout="mono")
            wave.sample_rate, wave.pts = sample_rate, 0  # pts 0: the muxer's edit list drops the AAC priming
            container.mux(sound.encode(wave))
            container.mux(sound.encode())


def write_imu_csv(path: str | os.PathLike, signals: dict[str, np.ndarray], rates: dict[str, float]) -> None:
    """Long-format log: columns timestamp, device, ax, ay, az, gx, gy, gz; device d's sample j at j / rates[d] s."""
    tables = [
        pd.DataFrame({"timestamp": np.arange(len(values)) / rates[name], "device": name,
                      **dict(zip(IMU_CHANNELS, np.asarray(values).T))})
        for name, values in signals.items()
    ]
    pd.concat(tables).sort_values("timestamp", kind="stable").to_csv(path, index=False, float_format="%.9g")


def write_moving_digits_folder(
    root: str | os.PathLike,
    num_clips: int = 32,
    *,
    split: str = "train",
    frames: int = 32,
    size: int = 32,
    digit_size: int = 12,
    min_speed: float = 0.25,
    max_speed: float = 0.5,
    fps: int = 8,
    seed: int = 0,
    gop: int = 16,
) -> Path:
    """Write ``num_clips`` MovingDigits clips as root/<digit word>/clip_<i>.{mp4,csv,txt} and
    root/manifest.jsonl (columns video, audio, imu, caption, label; label the digit word).

    Each mp4 holds the video and its audio track (16 kHz); the CSV the four default IMU sensors.
    Returns the manifest's path.
    """
    data = MovingDigits(split=split, num_samples=num_clips, frames=frames, size=size, digit_size=digit_size,
                        min_speed=min_speed, max_speed=max_speed, fps=fps, seed=seed,
                        modalities=("video", "audio", "imu", "text"))
    root = Path(root)
    rows = []
    for index in range(num_clips):
        sample = data[index]
        word = DIGIT_WORDS[int(sample["label"])]
        folder = root / word
        folder.mkdir(parents=True, exist_ok=True)
        stem = folder / f"clip_{index:05d}"
        write_mp4(stem.with_suffix(".mp4"), sample["video"].numpy(), fps, sample["audio"].numpy(), data.sample_rate,
                  gop)
        write_imu_csv(stem.with_suffix(".csv"), {k: v.numpy() for k, v in sample["imu"].items()}, data.imu_rates)
        stem.with_suffix(".txt").write_text(sample["caption"] + "\n")
        relative = stem.relative_to(root)
        rows.append({"video": f"{relative}.mp4", "audio": f"{relative}.mp4", "imu": f"{relative}.csv",
                     "caption": sample["caption"], "label": word})
    manifest = root / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return manifest


def write_demo_media(root: str | os.PathLike, train_clips: int = 512, test_clips: int = 128, **kwargs) -> Path:
    """root/train and root/test: MovingDigits media trees from the train and test digit splits
    (the quickstart's geometry unless ``kwargs`` of :func:`write_moving_digits_folder` say otherwise)."""
    settings = dict(frames=16, size=16, digit_size=12) | kwargs
    root = Path(root)
    write_moving_digits_folder(root / "train", train_clips, split="train", **settings)
    write_moving_digits_folder(root / "test", test_clips, split="test", **settings)
    return root
