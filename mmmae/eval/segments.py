"""Segment embeddings of long videos: a frozen encoder over sliding windows, one L2-normalised
pooled embedding per window (LV-MAE's input), and `mmmae extract`'s segment mode that writes them.

A segment feature folder is a feature folder (mmmae/eval/extract.py) whose arrays per sample are
features (L, D) (zero rows on padding), valid (L,) bool, indices (), and every integer-valued
entry of the samples (labels, per-segment labels, counts), under its own name; index.json adds
"segments": {"frames", "stride"}. L = 1 + (T - frames) // stride windows of the padded video
length T; a sample of F frames has 1 + (F - frames) // stride valid ones.
"""

from pathlib import Path

import gin
import torch
import torch.nn.functional as F
from accelerate.utils import send_to_device

from mmmae.eval.extract import FORMATS, ShardWriter, clear_previous
from mmmae.eval.frozen import check_modality, frozen
from mmmae.eval.loader import EvalLoader, no_samples_error


def window_count(frames: int, window: int, stride: int) -> int:
    """Windows of `window` frames every `stride` frames that fit in `frames`: 1 + (frames - window) // stride."""
    return 1 + (frames - window) // stride if frames >= window else 0


def check_windows(window: int, stride: int, owner: str = "segment mode") -> None:
    """A ValueError naming `owner`'s settings unless both are positive."""
    if window < 1 or stride < 1:
        raise ValueError(f"{owner}: segment_frames = {window} and segment_stride = {stride} must both be >= 1")


def segment_embeddings(model, modality: str, video: torch.Tensor, frames: torch.Tensor, window: int, stride: int,
                       batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Videos (B, C, T, H, W) of frames[b] real frames each (the rest padding) -> embeddings
    (B, L, D) float32, L = window_count(T, window, stride), each window's pooled features
    (Encoder.pool of the modality encoded alone, unmasked) L2-normalised, zeros where the window
    runs past frames[b]; and valid (B, L) bool. The model is used as it is (eval it first)."""
    check_windows(window, stride)
    short = (frames < window).nonzero().flatten().tolist()
    if short:
        raise ValueError(f"segment mode: sample rows {short} have {frames[short].tolist()} frames, fewer than one "
                         f"window of segment_frames = {window}: lower segment_frames or drop those videos")
    slots = window_count(video.shape[2], window, stride)
    starts = torch.arange(slots) * stride
    valid = starts[None] + window <= frames.cpu()[:, None]  # (B, L)
    rows, slot = valid.nonzero(as_tuple=True)
    windows = torch.stack([video[r, :, s:s + window] for r, s in zip(rows.tolist(), starts[slot].tolist())])
    device = next(model.parameters()).device
    pooled = []
    for part in windows.split(batch_size):
        encoded, tokens_valid = model.encode({modality: send_to_device(part, device)}, modality)
        pooled.append(model.encoder.pool(encoded, tokens_valid).float().cpu())
    pooled = F.normalize(torch.cat(pooled), dim=-1)
    embeddings = pooled.new_zeros(*valid.shape, pooled.shape[-1])
    embeddings[rows, slot] = pooled
    return embeddings, valid


def _integer_entries(batch: dict, modality: str) -> dict[str, torch.Tensor]:
    """The batch's integer-valued tensors (labels, counts; `index` and the frame count left out)."""
    skip = {"index", f"{modality}_frames", f"{modality}_present"}
    return {k: v for k, v in batch.items() if isinstance(v, torch.Tensor) and k not in skip
            and not v.is_floating_point() and v.dtype != torch.bool}


@gin.configurable(module="mmmae")
def extract_segments(model, dataset=gin.REQUIRED, modality: str = "video", output_dir: str | Path = gin.REQUIRED,
                     segment_frames: int = 8, segment_stride: int | None = None, fmt: str = "safetensors",
                     shard_size: int = 4096, batch_size: int = 64, overwrite: bool = False,
                     metadata: dict | None = None) -> list[Path]:
    """`mmmae extract --segment_frames N`: every sample's windows of `segment_frames` frames
    every `segment_stride` (default: segment_frames, back to back) encoded by `model` (frozen),
    written to `output_dir` as a segment feature folder (module docstring). A sample's frame
    count is its `{modality}_frames` entry (DigitSequences: the real frames before the padding),
    else its whole clip. Returns the files written, index.json last."""
    stride = segment_frames if segment_stride is None else segment_stride
    check_windows(segment_frames, stride, "extract_segments")
    if fmt not in FORMATS or shard_size < 1 or batch_size < 1:
        raise ValueError(f"extract_segments: fmt {fmt!r} must be one of {FORMATS}, shard_size = {shard_size} and "
                         f"batch_size = {batch_size} >= 1")
    check_modality(model, modality, "extract_segments")
    directory = Path(output_dir)
    clear_previous(directory, overwrite)
    writer = ShardWriter(directory, fmt, shard_size)  # makes the folder at its first shard
    index_source = "position"

    loader = EvalLoader(dataset, batch_size)
    with frozen(model):
        for positions, batch in loader:
            if modality not in batch:
                raise ValueError(f"extract_segments.dataset has no {modality!r} in its samples (they hold "
                                 f"{sorted(batch)}): choose --modality among them")
            video = batch[modality]
            frames = batch.get(f"{modality}_frames", torch.full((len(video),), video.shape[2]))
            try:
                embeddings, valid = segment_embeddings(model, modality, video, frames, segment_frames, stride,
                                                       batch_size)
            except ValueError as error:
                raise ValueError(f"extract_segments.dataset, samples {positions.tolist()}: {error}") from None
            if "index" in batch:
                index_source = "index"
            arrays = {"features": embeddings, "valid": valid, **_integer_entries(batch, modality),
                      "indices": torch.as_tensor(batch["index"]).long() if "index" in batch else positions}
            writer.add({name: array.numpy() for name, array in arrays.items()})
    files = writer.finish({"modality": modality, "pooled": False, "absent": 0, "left_out": loader.left_out,
                           "index_source": index_source, "segments": {"frames": segment_frames, "stride": stride},
                           "metadata": metadata or {}})
    if files is None:
        raise no_samples_error("extract_segments.dataset", modality, 0, loader.left_out)
    return files
