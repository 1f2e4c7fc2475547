"""`mmmae inpaint`: fill what a mask hides in a clip, an image or a dataset's clips with a trained model.

The input becomes clips of the size the model was trained on (`clip_shape`): a video file gives
T frames in a row from its middle (DenseSampling, stride 1, the last frame repeated when it is
shorter), an image a still clip of T copies, a dataset its first `clips` samples; each frame's
short side is resized to the crop's longer side (bilinear, antialiased) and the centre cropped
(CenterCrop), then values are in [0, 1]. "Visible pixels" are those of this clip, the model's
input: they come back unchanged, bit for bit, in the returned tensors and (as 8-bit values, the
same ones as the input panel) in the lossless mp4. A token is filled when any of its pixels is
masked; the model's answer replaces only the masked pixels (docs/inpainting.md). The model never
reads the masked pixels: they are set to the mean of the clip's visible pixels (per channel) before
anything tokenizes the clip.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import gin
import numpy as np
import torch
from einops import rearrange

from mmmae.data.media.clip_sampling import DenseSampling
from mmmae.data.media.errors import MediaError
from mmmae.data.media.video_reader import read_frames
from mmmae.data.transforms import CenterCrop
from mmmae.generate import drawable, fill, fillable, hidden_tokens, target_pixels, token_kernel
from mmmae.inpaint_masks import MaskSpec, parse_mask
from mmmae.masking.given import hidden_plan
from mmmae.model import MaskedAutoencoder

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v")
MASKED_GREY = 0.5  # what the masked-input panel shows where pixels are hidden
FPS = 8


@gin.configurable("inpaint", module="mmmae")
def inpaint_dataset(dataset=gin.REQUIRED):
    """What a gin data file given as `mmmae inpaint --input FILE.gin` binds: `inpaint.dataset = @...()`."""
    return dataset


@dataclass
class Inpainting:
    """inputs (B, C, T, H, W) in [0, 1] as the model saw them; mask (B, T, H, W) True = filled;
    samples (S, B, C, T, H, W): the inputs with the masked pixels replaced by the model's answers;
    generative: whether the decoder samples (then the panels add the samples' mean)."""

    inputs: torch.Tensor
    mask: torch.Tensor
    samples: torch.Tensor
    generative: bool

    def panels(self, names: Sequence[str]) -> dict[str, torch.Tensor]:
        """{label: (C, T, H, W)} per clip: input, masked input, each sample, and their mean when generative."""
        rows = {}
        for b, name in enumerate(names):
            rows[f"{name}: input"] = self.inputs[b]
            rows[f"{name}: masked"] = self.inputs[b].masked_fill(self.mask[b], MASKED_GREY)
            answers = {f"sample {s + 1}": x[b] for s, x in enumerate(self.samples)} if self.generative \
                else {"filled": self.samples[0, b]}
            if self.generative:
                answers["mean"] = torch.where(self.mask[b], self.samples[:, b].mean(dim=0), self.inputs[b])
            rows.update({f"{name}: {label}": x for label, x in answers.items()})
        return rows


@torch.no_grad()
def inpaint_clips(model: MaskedAutoencoder, clips: torch.Tensor, mask: torch.Tensor, modality: str = "video",
                  num_samples: int = 1, generator: torch.Generator | None = None,
                  context: dict[str, torch.Tensor] | None = None, **settings) -> torch.Tensor:
    """Clips (B, C, T, H, W) in [0, 1], pixel mask (B, T, H, W) True = fill -> (S, B, C, T, H, W):
    (context: the model's other modalities {m: (B, ...)}, seen whole, for a decoder that needs them)
    the tokens with a masked pixel filled by the model (`mmmae.generate.fill`), drawn as pixels
    (hidden tokens take per-patch statistics from their nearest visible ones) and put in at the
    masked pixels only; every other pixel is the input's, bit for bit."""
    hidden = hidden_tokens(mask, token_kernel(model.modalities[modality].tokenizer, clips[:1]))
    if hidden.all(dim=1).any() or not hidden.any(dim=1).all():
        raise ValueError("the mask must leave some tokens of every clip visible and hide some: it hides "
                         f"{hidden.sum(dim=1).tolist()} of {hidden.shape[1]} tokens")
    context = context or {}
    return torch.cat([filled_clip(model, clips[b:b + 1], mask[b:b + 1], hidden[b:b + 1], modality, num_samples,
                                  generator, settings, {m: x[b:b + 1] for m, x in context.items()})
                      for b in range(clips.shape[0])], dim=1)


def filled_clip(model: MaskedAutoencoder, clip: torch.Tensor, mask: torch.Tensor, hidden: torch.Tensor,
                modality: str, num_samples: int, generator: torch.Generator | None, settings: dict,
                context: dict[str, torch.Tensor]) -> torch.Tensor:
    """One clip (1, C, T, H, W) (masks hide different token counts in different clips) -> (S, 1, C, T, H, W).
    Nothing reads the masked pixels: they are blanked (`blanked`) before anything tokenizes or fills
    (a frozen VQ attends over the whole clip, so its visible codes would see them); the input clip is
    kept for the final composite only."""
    plan = hidden_plan(hidden)
    seen = blanked(clip, mask)
    answers = fill(model, {**context, modality: seen}, modality, plan, num_samples=num_samples, generator=generator,
                   **settings)
    given = model.modalities[modality].tokenizer(seen)
    target, index = given.target, plan.predict if given.target.ndim == 2 else plan.predict[..., None]
    samples = []
    for answer in answers:
        if target.ndim == 2:  # code ids (B, N): the answers are float ids (B, Q, 1)
            answer = answer[..., 0].round()
        tokens = target.scatter(1, index.expand(answer.shape), answer.to(target.dtype))
        pixels = target_pixels(model, modality, tokens, given.grid, seen, known=~hidden).clamp(0, 1)
        samples.append(torch.where(mask[:, None], pixels, clip))
    return torch.stack(samples)


def blanked(clip: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Clips (B, C, T, H, W) with their masked pixels (mask (B, T, H, W), True = hidden) set to the
    mean of each clip's visible pixels, per channel: what the model may see of a clip."""
    visible = (~mask[:, None]).to(clip.dtype)  # (B, 1, T, H, W)
    mean = (clip * visible).sum(dim=(2, 3, 4), keepdim=True) / visible.sum(dim=(2, 3, 4), keepdim=True)
    return torch.where(mask[:, None], mean, clip)


def takes_clips(tokenizer: torch.nn.Module) -> bool:
    """Whether a tokenizer reads clips (B, C, T, H, W): a pixel tokenizer with a (p0, p, p) kernel, or
    one whose targets are codes it draws back as a clip (VideoCodes)."""
    return hasattr(tokenizer, "decode_targets") or len(getattr(tokenizer, "kernel", ())) == 3


def check_inpaintable(model: MaskedAutoencoder, modality: str, decoder: torch.nn.Module) -> None:
    """A ValueError naming the flag when `mmmae inpaint --modality` cannot fill `modality` from a clip alone:
    a modality that is not clips (audio, text, IMU), or a model-level decoder that needs other modalities."""
    clips = [m for m, owner in model.modalities.items() if takes_clips(owner.tokenizer)]
    if modality not in clips:
        tokenizer = type(model.modalities[modality].tokenizer).__name__
        raise ValueError(f"--modality {modality}: {modality!r} is tokenized by {tokenizer}, not as clips "
                         f"(C, T, H, W): inpaint fills clips only; this model's clip modalities: {clips}")


def check_context(model: MaskedAutoencoder, modality: str, decoder: torch.nn.Module, source: str,
                  context: dict[str, torch.Tensor]) -> None:
    """A ValueError naming --input when a model-level decoder needs the model's other modalities and the
    input does not carry them (only a gin data file's samples can: e.g. FramePairs' past frame)."""
    missing = [m for m in model.modalities if m != modality and m not in context]
    if decoder is model.decoder and missing:
        raise ValueError(f"--input {source}: {type(decoder).__name__} (MaskedAutoencoder.decoder) decodes every "
                         f"modality together and needs the model's other modalities {missing} as context, seen "
                         "whole: give --input a gin data file whose inpaint.dataset samples carry them (e.g. "
                         "@FramePairs() for a frame-pair model; docs/inpainting.md)")


def clip_shape(model: MaskedAutoencoder, modality: str, frames: int | None, size: Sequence[int] | None
               ) -> tuple[int, int, int]:
    """(T, H, W) of the clips to inpaint: the flags, else the model's training clips (a sample of
    its config's pretrain.dataset, built from the gin config that built the model)."""
    if frames is None or size is None:
        try:
            dataset = gin.query_parameter("pretrain.dataset").scoped_configurable_fn()
            trained = tuple(dataset[0][modality].shape[-3:])
        except Exception as error:  # any dataset that cannot be built here: the flags must say it
            raise ValueError(f"cannot tell the clip size the model was trained on (its pretrain.dataset gives no "
                             f"{modality!r} sample here: {type(error).__name__}: {error}); give --frames and "
                             "--size") from None
        frames = trained[0] if frames is None else frames
        size = trained[1:] if size is None else size
    height, width = (size[0], size[0]) if len(size) == 1 else size
    tokenizer = model.modalities[modality].tokenizer
    if hasattr(tokenizer, "grid"):  # a clear error when the kernel does not fit
        tokenizer.grid((frames, height, width))
    return frames, height, width


def read_input(source: str, shape: tuple[int, int, int], modality: str, clips: int,
               others: dict[str, tuple[int, int, int]] | None = None
               ) -> tuple[torch.Tensor, list[str], dict[str, torch.Tensor]]:
    """The clips (B, 3, T, H, W) in [0, 1] of a video, an image, a media folder or a gin data file, their
    names, and (a data file only) the samples' `others` modalities {m: (B, C, T_m, H_m, W_m)} fitted to
    their shapes, where every sample has them."""
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"--input {source}: no such file or folder")
    if path.suffix == ".gin":
        return dataset_clips(path, shape, modality, clips, others or {})
    files = [path] if path.is_file() else sorted(
        p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in (*IMAGE_SUFFIXES, *VIDEO_SUFFIXES))[:clips]
    if not files:
        raise FileNotFoundError(f"--input {source}: the folder holds no video ({', '.join(VIDEO_SUFFIXES)}) or image "
                                f"({', '.join(IMAGE_SUFFIXES)}) files")
    return torch.stack([fitted(read_media(f, shape[0]), shape) for f in files]), [f.name for f in files], {}


def read_media(path: Path, frames: int) -> torch.Tensor:
    """A video's `frames` middle frames in a row, or an image as a still clip: (3, T, H, W) float in [0, 1]."""
    if path.suffix.lower() in IMAGE_SUFFIXES:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as image:
                still = torch.from_numpy(np.asarray(image.convert("RGB")).copy())
        except (UnidentifiedImageError, OSError, ValueError) as error:  # ValueError: a truncated header
            raise ValueError(f"--input {path}: cannot read the image: {error}") from None
        video = still[None].expand(frames, -1, -1, -1)
    else:
        try:
            video, _ = read_frames(path, DenseSampling(frames, stride=1, mode="center", short="pad"),
                                   np.random.default_rng(0))
        except (MediaError, av.FFmpegError) as error:
            raise ValueError(f"--input {path}: cannot read the video: {error}") from None
    return rearrange(video, "t h w c -> c t h w").float() / 255


def dataset_clips(path: Path, shape: tuple[int, int, int], modality: str, clips: int,
                  others: dict[str, tuple[int, int, int]]) -> tuple[torch.Tensor, list[str], dict[str, torch.Tensor]]:
    """The first `clips` readable samples' `modality` of the dataset a gin data file binds to `inpaint.dataset`
    (the file is parsed alone, after the model is built: it binds everything its dataset needs), and the
    same samples' `others` clips {m: shape} where every one of them has m."""
    from mmmae.config import parse_config

    parse_config([str(path)])  # alone: the model is built already
    try:
        gin.query_parameter("inpaint.dataset")
    except ValueError:
        raise ValueError(f"--input {path}: the data file does not bind inpaint.dataset; add a line "
                         "inpaint.dataset = @SomeDataset() (docs/inpainting.md)") from None
    try:
        dataset = inpaint_dataset()
    except (TypeError, ValueError) as error:  # a dataset's own check
        raise ValueError(f"--input {path}: the data file must bind inpaint.dataset = @SomeDataset() "
                         f"({error})") from None
    found, names, samples = [], [], []
    for index in range(len(dataset)):
        sample = dataset[index]
        if sample is not None and isinstance(sample.get(modality), torch.Tensor) and sample[modality].ndim == 4:
            found.append(fitted(sample[modality].float(), shape))
            names.append(f"clip {index}")
            samples.append(sample)
        if len(found) == clips:
            break
    if not found:
        raise ValueError(f"--input {path}: inpaint.dataset gives no sample with a {modality!r} clip (C, T, H, W)")
    context = {m: torch.stack([fitted(sample[m].float(), other) for sample in samples]) for m, other in others.items()
               if all(isinstance(sample.get(m), torch.Tensor) and sample[m].ndim == 4 for sample in samples)}
    return torch.stack(found), names, context


def fitted(clip: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """(C, T', H', W') -> (C, T, H, W): the first T frames (a shorter clip repeats its last one), each
    resized and centre-cropped to H x W unless it has that size already."""
    index = torch.arange(shape[0]).clamp_max(clip.shape[1] - 1)
    frames = rearrange(clip.index_select(1, index), "c t h w -> t c h w")
    if tuple(frames.shape[-2:]) != shape[1:]:
        frames = CenterCrop(shape[1:])(frames)[0].clamp(0, 1)
    return rearrange(frames, "t c h w -> c t h w").contiguous()


def write_outputs(result: Inpainting, names: Sequence[str], output: Path, title: str) -> list[Path]:
    """PATH.mp4 (lossless RGB H.264: panels side by side, one row per clip) and PATH.png (the grid figure)."""
    from mmmae.viz import rows_figure
    from mmmae.viz_figure import save_figure

    output.parent.mkdir(parents=True, exist_ok=True)
    panels = result.panels(names)
    per_clip = len(panels) // len(names)
    canvas = torch.stack(list(panels.values()))  # (B * rows, C, T, H, W)
    canvas = rearrange(canvas, "(b r) c t h w -> t (b h) (r w) c", r=per_clip)
    movie, figure = output.with_suffix(".mp4"), output.with_suffix(".png")
    write_lossless_mp4(movie, (canvas * 255).round().to(torch.uint8).numpy())
    save_figure(rows_figure(panels, title), figure)
    return [movie, figure]


def write_lossless_mp4(path: Path, frames: np.ndarray) -> None:
    """(T, H, W, 3) uint8 as lossless RGB H.264 (libx264rgb, crf 0): decoding gives these bytes back."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264rgb", rate=FPS, options={"crf": "0", "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "rgb24"
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")))
        container.mux(stream.encode())


def run_inpaint(model_source: str, source: str, spec: str, output: str, samples: int = 1, steps: int | None = None,
                seed: int = 0, modality: str = "video", clips: int = 4, frames: int | None = None,
                size: Sequence[int] | None = None) -> list[Path]:
    """`mmmae inpaint`: every check first (spec, model, decoder, drawable targets, input, mask), then
    PATH.mp4 and PATH.png (PATH without its suffix); a user error raises before anything is written."""
    from mmmae.zoo.pretrained import from_pretrained, locate

    mask_spec: MaskSpec = parse_mask(spec)
    files = locate(model_source)
    if files.metadata.get("encoder_only"):
        raise ValueError(f"--model {model_source} was exported encoder-only: its decoders were left out, so it "
                         "cannot fill anything (export it without --encoder_only)")
    model = from_pretrained(model_source)
    decoder = fillable(model, modality)
    check_inpaintable(model, modality, decoder)
    generative = hasattr(decoder, "sample") or hasattr(decoder, "fill")
    if not generative and samples != 1:
        raise ValueError(f"--samples {samples}: {type(decoder).__name__}, the decoder of {modality!r}, is "
                         "deterministic and gives one answer (drop --samples)")
    if not generative and steps is not None:
        raise ValueError(f"--steps: {type(decoder).__name__}, the decoder of {modality!r}, does not sample")
    shape = clip_shape(model, modality, frames, size)
    drawable(model, modality, torch.zeros(1, 3, *shape))
    others = {m: clip_shape(model, m, None, None) for m, owner in model.modalities.items()
              if m != modality and decoder is model.decoder and takes_clips(owner.tokenizer)}
    inputs, names, context = read_input(source, shape, modality, clips, others)
    check_context(model, modality, decoder, source, context)
    tokenizer = model.modalities[modality].tokenizer
    channels = getattr(getattr(tokenizer, "proj", None), "in_channels", inputs.shape[1])
    if inputs.shape[1] != channels:
        raise ValueError(f"--input {source}: the clips have {inputs.shape[1]} channels, the model takes {channels}")
    generator = torch.Generator().manual_seed(seed)
    kernel = token_kernel(tokenizer, inputs[:1])
    mask = torch.stack([mask_spec.pixels(shape, kernel, generator) for _ in names])
    settings = {} if steps is None else {"steps": steps}
    answers = inpaint_clips(model, inputs, mask, modality, samples, generator, context, **settings)
    result = Inpainting(inputs, mask, answers, generative)
    title = f"{model_source} inpainting --mask {spec}" + (f" ({samples} samples, seed {seed})" if generative else "")
    return write_outputs(result, names, Path(output).with_suffix(""), title)
