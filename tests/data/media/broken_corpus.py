"""A broken-input corpus: kinds of broken video, audio, IMU, caption and manifest inputs (and a few
awkward but valid ones), each written as one row of a dataset folder next to good MovingDigits rows.

A kind's ``write(folder, good)`` writes its files into ``folder`` and returns a :class:`Written`:
the row (a manifest object, or a raw manifest line) and the file a report must name. ``outcome``
says what mmmae must do with it: ``"row"`` (validate reports it; training skips and counts it;
evaluation leaves it out), ``"kept"`` (validate reports it; training and evaluation use the clip
with its ``absent`` modalities marked absent), ``"layout"`` (the whole source is refused with one
message naming the manifest and line) or ``"fine"`` (read as valid; ``absent`` modalities marked
absent).
:func:`write_case` lays a kind out as a dataset (good rows first, the kind's row last).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import av
import numpy as np
import pandas as pd
import torch
import torchaudio

from mmmae.data.media.synthetic import IMU_CHANNELS, write_imu_csv, write_moving_digits_folder
from mmmae.data.moving_digits.dataset import MovingDigits
from mmmae.data.moving_digits.modalities.imu import DEFAULT_IMU_RATES

FPS, FRAMES, SIZE, GOOD_CLIPS = 8, 16, 16, 3  # good clips: 2 s at 8 fps, 16x16
SECONDS = FRAMES / FPS
SAMPLE_RATE = 16000
MS = Fraction(1, 1000)
BROKEN_CLASS = "zz_broken"  # sorts after every digit word: a class folder's broken clip is its last row


class Good(NamedTuple):
    """The good clips: their folder and manifest rows (absolute paths; video, audio, imu, caption, label)."""

    root: Path
    rows: list[dict]


class Written(NamedTuple):
    """What a kind wrote: its row (a manifest object, a raw manifest line, or None in a class folder)
    and the file a report about it must name."""

    row: dict | str | None
    named: str


@dataclass(frozen=True)
class Kind:
    """One kind of input. says: words of which the reason must hold one (lower case; empty: any)."""

    name: str
    modality: str  # video | audio | imu | caption | manifest
    outcome: str  # row | kept | layout | fine
    write: Callable[[Path, Good], Written]
    says: tuple[str, ...] = ()
    layout: str = "manifest"  # manifest | class_folder
    absent: tuple[str, ...] = ()  # kept and fine kinds: modalities read as absent


class Case(NamedTuple):
    """A kind laid out as a dataset: source (manifest or class-folder root), the kind's row index,
    the file a report must name, and the kind's line in the manifest (where a layout error points)."""

    source: Path
    index: int
    named: str
    line: int


def write_good(root: Path) -> Good:
    """GOOD_CLIPS MovingDigits clips (mp4 with AAC audio, IMU CSV, caption) in class folders under root."""
    manifest = write_moving_digits_folder(root, GOOD_CLIPS, frames=FRAMES, size=SIZE, fps=FPS)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    media = ("video", "audio", "imu")
    return Good(root, [{k: str(root / v) if k in media else v for k, v in row.items()} for row in rows])


# --- media writers ---------------------------------------------------------------------------


def digits(frames: int, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """A MovingDigits clip: images (T, H, W, 3) uint8 and its audio (S,) float32 at SAMPLE_RATE."""
    sample = MovingDigits(num_samples=1, frames=frames, size=SIZE, fps=fps, modalities=("video", "audio"))[0]
    images = np.clip(np.rint(sample["video"].numpy() * 255), 0, 255).astype(np.uint8).transpose(1, 2, 3, 0)
    return images, sample["audio"].numpy()


def write_media(
    path: Path,
    images: np.ndarray | None,
    times: np.ndarray | None = None,
    audio: np.ndarray | None = None,
    video_codec: str = "libx264",
    audio_codec: str = "aac",
    audio_rate: int = SAMPLE_RATE,
    layout: str = "mono",
) -> Path:
    """images (T, H, W, 3) uint8 shown at times (T,) s (default t / FPS) and audio (channels, S) float32
    at audio_rate, in the container the suffix names. Either may be None (no such stream)."""
    with av.open(os.fspath(path), "w") as container:
        video = container.add_stream(video_codec, rate=FPS, options={"g": "8"}) if images is not None else None
        sound = container.add_stream(audio_codec, rate=audio_rate, layout=layout) if audio is not None else None
        if video is not None:
            video.width, video.height, video.pix_fmt = images.shape[2], images.shape[1], "yuv420p"
            video.codec_context.time_base = MS
            for image, time in zip(images, np.arange(len(images)) / FPS if times is None else times):
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts, frame.time_base = round(time * 1000), MS
                container.mux(video.encode(frame))
            container.mux(video.encode())
        if sound is not None:
            wave = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio, np.float32), format="fltp", layout=layout)
            wave.sample_rate, wave.pts, wave.time_base = audio_rate, 0, Fraction(1, audio_rate)
            container.mux(sound.encode(wave))
            container.mux(sound.encode())
    return path


def clip(path: Path, frames: int = FRAMES, fps: float = FPS, audio: bool = True, **options) -> Path:
    """A MovingDigits clip of ``frames`` at ``fps`` (and its audio track) in the suffix's container."""
    images, sound = digits(frames, fps)
    times = np.arange(frames) / fps
    return write_media(path, images, times, sound[None] if audio else None, **options)


def webm(path: Path) -> Path:
    """A MovingDigits clip as VP9 video and Opus audio (48 kHz, Opus's only rate) in WebM."""
    images, sound = digits(FRAMES, FPS)
    sound = torchaudio.functional.resample(torch.from_numpy(sound), SAMPLE_RATE, 48000).numpy()
    return write_media(path, images, None, sound[None], "libvpx-vp9", "libopus", 48000)


def truncate(path: Path, keep: float) -> Path:
    """Cut the file to its first ``keep`` fraction of bytes (its header still states the whole length)."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def imu_table(rates: dict[str, float] = DEFAULT_IMU_RATES, seconds: float = SECONDS) -> dict[str, np.ndarray]:
    """{device: (N, len(IMU_CHANNELS)) float}: a smooth signal per device covering [0, seconds] at its rate."""
    channels = np.arange(len(IMU_CHANNELS))
    return {name: np.sin(np.arange(int(rate * seconds) + 1)[:, None] / rate + channels) for name, rate in rates.items()}


def csv_log(path: Path, rates: dict[str, float] = DEFAULT_IMU_RATES, seconds: float = SECONDS) -> Path:
    write_imu_csv(path, imu_table(rates, seconds), dict(rates))
    return path


def edit_csv(path: Path, edit: Callable[[pd.DataFrame], pd.DataFrame]) -> Path:
    """A good CSV log (DEFAULT_IMU_RATES, SECONDS long) with ``edit`` applied to its table."""
    csv_log(path)
    edit(pd.read_csv(path)).to_csv(path, index=False, float_format="%.9g", na_rep="NaN")
    return path


# --- rows --------------------------------------------------------------------------------------


def video_row(good: Good, video: Path | str, audio_in_video: bool = True) -> Written:
    """A row whose video is ``video`` (its audio from it too), with a good IMU log and caption."""
    base = good.rows[0]
    row = {"video": str(video), "audio": str(video) if audio_in_video else None, "imu": base["imu"],
           "caption": base["caption"], "label": base["label"]}
    return Written(row, str(video))


def audio_row(good: Good, audio: Path | str) -> Written:
    base = good.rows[0]
    return Written(dict(base, audio=str(audio)), str(audio))


def imu_row(good: Good, imu: Path | str) -> Written:
    base = good.rows[0]
    return Written(dict(base, imu=str(imu)), str(imu))


def manifest_line(good: Good, folder: Path, **changes) -> Written:
    """A manifest row like the first good one with ``changes``; the manifest is what a report names."""
    return Written(dict(good.rows[0], **changes), str(folder / "manifest.jsonl"))


def raw_line(good: Good, folder: Path, text: str) -> Written:
    return Written(text, str(folder / "manifest.jsonl"))


def broken_clip(folder: Path, good: Good, caption: Callable[[Path], None] | None) -> Written:
    """A class-folder clip (a good clip's mp4 and CSV) whose caption file ``caption(path)`` writes (None: no .txt)."""
    stem = folder / BROKEN_CLASS / "clip"
    stem.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(good.rows[0]["video"], stem.with_suffix(".mp4"))
    shutil.copy(good.rows[0]["imu"], stem.with_suffix(".csv"))
    if caption is not None:
        caption(stem.with_suffix(".txt"))
    return Written(None, str(stem.with_suffix(".txt")))


# --- video -------------------------------------------------------------------------------------


def empty_mp4(folder: Path, good: Good) -> Written:
    (path := folder / "empty.mp4").write_bytes(b"")
    return video_row(good, path)


def png_renamed_mp4(folder: Path, good: Good) -> Written:
    path = folder / "image.mp4"
    with av.open(os.fspath(path), "w", format="image2pipe") as container:
        stream = container.add_stream("png", rate=1)
        stream.width, stream.height, stream.pix_fmt = SIZE, SIZE, "rgb24"
        container.mux(stream.encode(av.VideoFrame.from_ndarray(digits(1, FPS)[0][0], format="rgb24")))
        container.mux(stream.encode())
    return video_row(good, path)


def text_renamed_mkv(folder: Path, good: Good) -> Written:
    (path := folder / "notes.mkv").write_text("these are meeting notes, not a video\n" * 20)
    return video_row(good, path)


def truncated_mp4(folder: Path, good: Good) -> Written:
    """The index (moov) is written last: the cut file has frames but no index."""
    return video_row(good, truncate(clip(folder / "cut.mp4"), 0.6))


def truncated_webm(folder: Path, good: Good) -> Written:
    return video_row(good, truncate(webm(folder / "cut.webm"), 0.5))


def truncated_mkv(folder: Path, good: Good) -> Written:
    return video_row(good, truncate(clip(folder / "cut.mkv"), 0.5))


def one_frame(folder: Path, good: Good) -> Written:
    return video_row(good, clip(folder / "one_frame.mp4", frames=1))


def no_video_stream(folder: Path, good: Good) -> Written:
    path = write_media(folder / "sound_only.mp4", None, audio=digits(FRAMES, FPS)[1][None])
    return video_row(good, path)


def corrupt_middle(folder: Path, good: Good) -> Written:
    """The frame data (the mp4's mdat box) overwritten with noise but for its first and last tenth; the index intact."""
    path = clip(folder / "corrupt.mp4", audio=False)
    data = bytearray(path.read_bytes())
    box = data.index(b"mdat") - 4  # a box: 4-byte big-endian size, then its type
    size = int.from_bytes(data[box : box + 4], "big")
    tenth = (size - 8) // 10
    data[box + 8 + tenth : box + size - tenth] = np.random.default_rng(0).bytes(size - 8 - 2 * tenth)
    path.write_bytes(bytes(data))
    return video_row(good, path, audio_in_video=False)


def fps_30_among_8(folder: Path, good: Good) -> Written:
    """With span_seconds None a clip's span follows its frame rate: 30 fps gives other shapes than 8."""
    return video_row(good, clip(folder / "fast.mp4", frames=int(30 * SECONDS), fps=30))


def too_short(folder: Path, good: Good) -> Written:
    """3 frames (0.375 s) and their audio: a clip of 4 frames at stride 2 needs 1 s."""
    return video_row(good, clip(folder / "short.mp4", frames=3))


def missing_video(folder: Path, good: Good) -> Written:
    return video_row(good, folder / "absent.mp4")


def span_past_the_end(folder: Path, good: Good) -> Written:
    """start/end beyond the 2 s video."""
    row, named = video_row(good, good.rows[0]["video"])
    return Written(dict(row, start=SECONDS + 3, end=SECONDS + 4), named)


# --- audio -------------------------------------------------------------------------------------


def wav(path: Path, seconds: float = SECONDS, layout: str = "mono") -> Path:
    channels = len(av.AudioLayout(layout).channels)
    wave = np.sin(2 * np.pi * 440 * np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE) / 4
    return write_media(path, None, audio=np.repeat(wave[None], channels, 0), audio_codec="pcm_s16le", layout=layout)


def missing_audio(folder: Path, good: Good) -> Written:
    return audio_row(good, folder / "absent.wav")


def text_renamed_wav(folder: Path, good: Good) -> Written:
    (path := folder / "lyrics.wav").write_text("la la la, this is not audio\n" * 20)
    return audio_row(good, path)


def zero_byte_wav(folder: Path, good: Good) -> Written:
    (path := folder / "empty.wav").write_bytes(b"")
    return audio_row(good, path)


def truncated_wav(folder: Path, good: Good) -> Written:
    """The header states 2 s; 0.2 s of samples remain."""
    return audio_row(good, truncate(wav(folder / "cut.wav"), 0.1))


def audio_file_without_audio(folder: Path, good: Good) -> Written:
    """A separate audio file that holds only video: an error (unlike a video's own missing track)."""
    return audio_row(good, clip(folder / "silent.mp4", audio=False))


def audio_too_short(folder: Path, good: Good) -> Written:
    return audio_row(good, wav(folder / "short.wav", seconds=0.2))


# --- IMU ---------------------------------------------------------------------------------------


def imu_non_numeric(folder: Path, good: Good) -> Written:
    def edit(table: pd.DataFrame) -> pd.DataFrame:
        table = table.astype({"ay": object})
        table.loc[5, "ay"] = "n/a"
        return table
    return imu_row(good, edit_csv(folder / "text_cell.csv", edit))


def imu_missing_header_column(folder: Path, good: Good) -> Written:
    """The header lacks 'gz' while every row still has 8 fields."""
    path = csv_log(folder / "short_header.csv")
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0].rsplit(",", 1)[0], *lines[1:]]) + "\n")
    return imu_row(good, path)


def imu_3_channels(folder: Path, good: Good) -> Written:
    return imu_row(good, edit_csv(folder / "accel_only.csv", lambda t: t.drop(columns=["gx", "gy", "gz"])))


def imu_npz_3_channels(folder: Path, good: Good) -> Written:
    path = folder / "accel_only.npz"
    np.savez(path, **{name: np.column_stack([np.arange(len(v)) / DEFAULT_IMU_RATES[name], v[:, :3]])
                      for name, v in imu_table().items()})
    return imu_row(good, path)


def imu_non_monotonic(folder: Path, good: Good) -> Written:
    def edit(table: pd.DataFrame) -> pd.DataFrame:
        rows = table.index[table["device"] == "center"]
        table.loc[rows[10], "timestamp"] = table.loc[rows[3], "timestamp"]
        return table
    return imu_row(good, edit_csv(folder / "backwards.csv", edit))


def imu_nan(folder: Path, good: Good) -> Written:
    def edit(table: pd.DataFrame) -> pd.DataFrame:
        table.loc[7, "gx"] = np.nan
        return table
    return imu_row(good, edit_csv(folder / "nan.csv", edit))


def imu_gap(folder: Path, good: Good) -> Written:
    """Device 'center' (64 Hz) loses 0.4 s in the middle; a random span may miss it, the whole log may not."""
    def edit(table: pd.DataFrame) -> pd.DataFrame:
        lost = (table["device"] == "center") & (table["timestamp"] > 1.4) & (table["timestamp"] < 1.8)
        return table[~lost]
    return imu_row(good, edit_csv(folder / "gap.csv", edit))


def imu_too_short(folder: Path, good: Good) -> Written:
    return imu_row(good, csv_log(folder / "brief.csv", seconds=0.3))


def imu_empty_csv(folder: Path, good: Good) -> Written:
    (path := folder / "empty.csv").write_bytes(b"")
    return imu_row(good, path)


def imu_header_only(folder: Path, good: Good) -> Written:
    (path := folder / "header.csv").write_text(",".join(("timestamp", "device", *IMU_CHANNELS)) + "\n")
    return imu_row(good, path)


def imu_missing_device(folder: Path, good: Good) -> Written:
    return imu_row(good, edit_csv(folder / "three_devices.csv", lambda t: t[t["device"] != "bottom"]))


def imu_npz_wrong_keys(folder: Path, good: Good) -> Written:
    path = folder / "unnamed.npz"
    np.savez(path, *[np.column_stack([np.arange(len(v)) / DEFAULT_IMU_RATES[name], v])
                     for name, v in imu_table().items()])  # arr_0, arr_1, ...
    return imu_row(good, path)


class Unpickled:
    """Unpickling it makes the directory ``flag``: proof that a loader ran pickle."""

    def __init__(self, flag: Path):
        self.flag = flag

    def __reduce__(self):
        return os.mkdir, (os.fspath(self.flag),)


def pickle_flag(folder: Path) -> Path:
    """The directory that exists only if the pickle-bearing log was ever unpickled."""
    return folder / "unpickled"


def imu_pickle_npz(folder: Path, good: Good) -> Written:
    path = folder / "pickled.npz"
    logs = {name: np.array([Unpickled(pickle_flag(folder))], dtype=object) for name in DEFAULT_IMU_RATES}
    np.savez(path, **logs)
    return imu_row(good, path)


def imu_missing_file(folder: Path, good: Good) -> Written:
    return imu_row(good, folder / "absent.csv")


# --- captions (class folder) ---------------------------------------------------------------------


def caption_non_utf8(folder: Path, good: Good) -> Written:
    return broken_clip(folder, good, lambda path: path.write_bytes("a café scene\n".encode("latin-1")))


def caption_is_directory(folder: Path, good: Good) -> Written:
    return broken_clip(folder, good, lambda path: path.mkdir())


# --- manifest ----------------------------------------------------------------------------------


def label_list(folder: Path, good: Good) -> Written:
    return manifest_line(good, folder, label=[1, 2])


def start_after_end(folder: Path, good: Good) -> Written:
    return manifest_line(good, folder, start=1.5, end=0.5)


def negative_start(folder: Path, good: Good) -> Written:
    return manifest_line(good, folder, start=-0.5, end=1.0)


def invalid_json(folder: Path, good: Good) -> Written:
    return raw_line(good, folder, '{"video": "clip.mp4", "label": ')


def unknown_column(folder: Path, good: Good) -> Written:
    return manifest_line(good, folder, duration=2.0)


def path_not_a_string(folder: Path, good: Good) -> Written:
    return manifest_line(good, folder, video=5)


def no_media(folder: Path, good: Good) -> Written:
    return raw_line(good, folder, json.dumps({"caption": "a seven moves up", "label": good.rows[0]["label"]}))


# --- valid inputs that must not be treated as broken -------------------------------------------


def no_audio_track(folder: Path, good: Good) -> Written:
    return video_row(good, clip(folder / "mute.mp4", audio=False))


def imu_10hz(folder: Path, good: Good) -> Written:
    """Every device at 10 Hz, timestamps accumulated in float and printed with 6 decimals (as loggers do)."""
    path = folder / "slow.csv"
    times = np.cumsum(np.full(int(10 * SECONDS) + 1, 0.1)) - 0.1
    values = np.sin(times[:, None] + np.arange(6))
    table = pd.concat([pd.DataFrame({"timestamp": times, "device": name, **dict(zip(IMU_CHANNELS, values.T))})
                       for name in DEFAULT_IMU_RATES])
    table.sort_values("timestamp", kind="stable").to_csv(path, index=False, float_format="%.6f")
    return imu_row(good, path)


def webm_ok(folder: Path, good: Good) -> Written:
    return video_row(good, webm(folder / "fine.webm"))


def mkv_ok(folder: Path, good: Good) -> Written:
    return video_row(good, clip(folder / "fine.mkv"))


def audio_5_1(folder: Path, good: Good) -> Written:
    return audio_row(good, wav(folder / "surround.wav", layout="5.1"))


def variable_frame_rate(folder: Path, good: Good) -> Written:
    """8 fps with every fourth frame dropped: frame intervals 125 and 250 ms (the median stays 125)."""
    images, sound = digits(FRAMES, FPS)
    kept = [i for i in range(FRAMES) if i % 4 != 3]
    return video_row(good, write_media(folder / "vfr.mp4", images[kept], np.array(kept) / FPS, sound[None]))


def caption_missing(folder: Path, good: Good) -> Written:
    return broken_clip(folder, good, None)


KINDS = (
    Kind("empty_mp4", "video", "row", empty_mp4, ("empty",)),
    Kind("png_renamed_mp4", "video", "row", png_renamed_mp4, ("frame", "image", "not a media file")),
    Kind("text_renamed_mkv", "video", "row", text_renamed_mkv, ("not a media file",)),
    Kind("truncated_mp4_no_moov", "video", "row", truncated_mp4, ("truncated", "not a media file", "index")),
    Kind("truncated_webm", "video", "row", truncated_webm, ("truncated",)),
    Kind("truncated_mkv", "video", "row", truncated_mkv, ("truncated",)),
    Kind("one_frame_video", "video", "row", one_frame, ("frame",)),
    Kind("no_video_stream", "video", "row", no_video_stream, ("video stream",)),
    Kind("corrupt_middle_mp4", "video", "row", corrupt_middle, ("decode", "corrupt", "invalid")),
    Kind("fps_30_among_8", "video", "row", fps_30_among_8, ("span_seconds", "frame rate", "fps")),
    Kind("too_short_clip", "video", "row", too_short, ("covers", "short", "needs")),
    Kind("missing_video", "video", "row", missing_video, ("not found", "no such file", "missing")),
    Kind("span_past_the_end", "video", "row", span_past_the_end, ("window", "span", "frames")),
    Kind("missing_audio_file", "audio", "row", missing_audio, ("not found", "no such file", "missing")),
    Kind("text_renamed_wav", "audio", "row", text_renamed_wav, ("not a media file", "not audio")),
    Kind("zero_byte_wav", "audio", "row", zero_byte_wav, ("empty",)),
    Kind("truncated_wav", "audio", "row", truncated_wav, ("truncated", "covers")),
    Kind("audio_file_without_audio", "audio", "row", audio_file_without_audio, ("no audio",)),
    Kind("audio_too_short", "audio", "row", audio_too_short, ("covers", "short")),
    Kind("imu_non_numeric_cell", "imu", "row", imu_non_numeric, ("not a number",)),
    Kind("imu_missing_header_column", "imu", "row", imu_missing_header_column, ("header", "fields", "column")),
    Kind("imu_3_of_6_channels_csv", "imu", "row", imu_3_channels, ("channel",)),
    Kind("imu_3_of_6_channels_npz", "imu", "row", imu_npz_3_channels, ("channel",)),
    Kind("imu_non_monotonic", "imu", "row", imu_non_monotonic, ("increase", "monotonic")),
    Kind("imu_nan", "imu", "row", imu_nan, ("non-finite", "nan")),
    Kind("imu_gap_0_4s", "imu", "row", imu_gap, ("gap",)),
    Kind("imu_too_short", "imu", "row", imu_too_short, ("covers", "short")),
    Kind("imu_empty_csv", "imu", "row", imu_empty_csv, ("empty", "header")),
    Kind("imu_header_only", "imu", "row", imu_header_only, ("no samples",)),
    Kind("imu_missing_device", "imu", "row", imu_missing_device, ("missing", "device")),
    Kind("imu_npz_wrong_keys", "imu", "row", imu_npz_wrong_keys, ("missing", "device")),
    Kind("imu_pickle_npz", "imu", "row", imu_pickle_npz, ("object", "pickle")),
    Kind("imu_missing_file", "imu", "row", imu_missing_file, ("not found", "no such file", "cannot read")),
    Kind("caption_non_utf8", "caption", "kept", caption_non_utf8, ("utf-8",), "class_folder", ("text",)),
    Kind("caption_is_directory", "caption", "kept", caption_is_directory, ("directory",), "class_folder", ("text",)),
    Kind("manifest_label_list", "manifest", "layout", label_list, ("label",)),
    Kind("manifest_start_after_end", "manifest", "layout", start_after_end, ("start",)),
    Kind("manifest_negative_start", "manifest", "layout", negative_start, ("start",)),
    Kind("manifest_invalid_json", "manifest", "layout", invalid_json, ("json",)),
    Kind("manifest_unknown_column", "manifest", "layout", unknown_column, ("column",)),
    Kind("manifest_path_not_a_string", "manifest", "layout", path_not_a_string, ("string", "path")),
    Kind("manifest_no_media", "manifest", "layout", no_media, ("no media",)),
    Kind("no_audio_track", "video", "fine", no_audio_track, absent=("audio",)),
    Kind("imu_10hz", "imu", "fine", imu_10hz),
    Kind("webm_ok", "video", "fine", webm_ok),
    Kind("mkv_ok", "video", "fine", mkv_ok),
    Kind("audio_5_1", "audio", "fine", audio_5_1),
    Kind("variable_frame_rate", "video", "fine", variable_frame_rate),
    Kind("caption_missing", "caption", "fine", caption_missing, layout="class_folder", absent=("text",)),
)


def write_case(kind: Kind, folder: Path, good: Good) -> Case:
    """Lay ``kind`` out in ``folder`` as a dataset: the good rows, then the kind's row (index len(good.rows))."""
    folder.mkdir(parents=True)
    written = kind.write(folder, good)
    index = len(good.rows)
    if kind.layout == "class_folder":
        for row in good.rows:
            target = folder / row["label"]
            target.mkdir(exist_ok=True)
            for path in (row["video"], row["imu"], Path(row["video"]).with_suffix(".txt")):
                shutil.copy(path, target)
        return Case(folder, index, written.named, index + 1)
    lines = [json.dumps(row) for row in good.rows]
    lines.append(written.row if isinstance(written.row, str) else json.dumps(written.row))
    (folder / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return Case(folder / "manifest.jsonl", index, written.named, index + 1)
