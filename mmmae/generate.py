"""Generation with a trained masked model: fill the tokens a MaskPlan hides, and draw targets as pixels.

`fill` dispatches on the modality's decoder (docs/design.md, "Generative sampling"):
a decoder with `fill(model, batch, modality, plan, ...)` runs the whole model itself (MaskGIT's
iterative decoding); a decoder (modality-level or `MaskedAutoencoder.decoder`) with `sample(...)`
is given the visible tokens encoded once and draws `num_samples` answers; any other decoder is
deterministic and answers once through its forward.

`target_pixels` turns target tokens back into pixels: the tokenizer's own `decode_targets` when it
has one, else the inverse of the pixel tokenizers' targets (mmmae/tokenizers/patches.py). Targets
normalised per patch (`norm_target = True` or 'mae') need each patch's mean and spread, which a
hidden patch does not give away: a hidden token borrows the statistics of its nearest visible
tokens on the token grid (the mean over those at the smallest distance), never its own pixels.
"""

import torch
from einops import rearrange, reduce

from mmmae.model import MaskedAutoencoder
from mmmae.nn.quantized_decoder import QuantizedDecoder
from mmmae.tokenizers.patches import MAE_TARGETS, PixelTokenizer
from mmmae.types import Decoded, MaskPlan, ModalityOutput, Tokens


def hidden_tokens(pixel_mask: torch.Tensor, kernel: tuple[int, ...]) -> torch.Tensor:
    """Pixel mask (B, T, H, W) (or (B, H, W) for images) True = fill, with the tokenizer's kernel
    (p0, p, p) -> (B, N) bool: a token is hidden when any of its pixels is."""
    if pixel_mask.ndim == 4:
        return reduce(pixel_mask.to(torch.uint8), "b (t p0) (h p1) (w p2) -> b (t h w)", "max",
                      p0=kernel[0], p1=kernel[1], p2=kernel[2]).bool()
    return reduce(pixel_mask.to(torch.uint8), "b (h p1) (w p2) -> b (h w)", "max", p1=kernel[-2], p2=kernel[-1]).bool()


def token_kernel(tokenizer: torch.nn.Module, clip: torch.Tensor) -> tuple[int, int, int]:
    """The pixels (p0, p, p) each token of `tokenizer` covers, read off the token grid of a clip
    (1, C, T, H, W); a ValueError when the grid is not the clip's lattice."""
    grid = tuple(tokenizer(clip).grid)
    shape = tuple(clip.shape[-3:])
    if len(grid) != 3 or any(size % cells for size, cells in zip(shape, grid)):
        raise ValueError(f"{type(tokenizer).__name__} cuts a clip of {shape} pixels into a token grid {grid}, not a "
                         "lattice of equal boxes: its tokens cannot be mapped to pixels")
    return tuple(size // cells for size, cells in zip(shape, grid))


def everything_visible(tokens: Tokens) -> MaskPlan:
    """A plan that keeps every token and predicts none: a conditioning modality."""
    batch_size, num_tokens = tokens.embed.shape[:2]
    keep = torch.arange(num_tokens, device=tokens.embed.device).repeat(batch_size, 1)
    return MaskPlan(keep=keep, predict=keep[:, :0])


def decoder_of(model: MaskedAutoencoder, modality: str) -> torch.nn.Module:
    """The decoder that predicts `modality`: its own or the model-level one; a clear error for none."""
    if modality not in model.modalities:
        raise ValueError(f"the model has no modality {modality!r} (its modalities: {list(model.modalities)})")
    own = model.modalities[modality].decoder
    if own is not None:
        return own
    if model.decoder is not None:
        return model.decoder
    raise ValueError(f"the model has no decoder for {modality!r}: it was only encoded in pretraining (no "
                     f"{modality}/Modality.decoder or MaskedAutoencoder.decoder), or its decoder was left out of "
                     "an encoder-only export")


def encode_with_plan(model: MaskedAutoencoder, batch: dict, modality: str, plan: MaskPlan
                     ) -> dict[str, ModalityOutput]:
    """Every modality of the model in the batch tokenized and encoded together (one encoder pass):
    `modality` with `plan`, the others wholly visible, as context."""
    names = [m for m in model.modalities if m in batch]
    tokens = {m: model.modalities[m].tokenize(batch[m], with_target=False) for m in names}
    plans = {m: plan if m == modality else everything_visible(tokens[m]) for m in names}
    return model.encode_visible(tokens, plans, batch)


def fillable(model: MaskedAutoencoder, modality: str) -> torch.nn.Module:
    """The decoder of `modality` when it can fill hidden tokens; a ValueError naming why not."""
    decoder = decoder_of(model, modality)
    if isinstance(decoder, QuantizedDecoder):
        raise ValueError(f"the decoder of {modality!r} is a QuantizedDecoder (a VQ tokenizer's first stage): it "
                         "reconstructs every token from its own code and cannot fill hidden ones; fill with a MaskGIT "
                         "model over its codes (recipes/motionaura.gin, which reads this VQ as its tokenizer)")
    return decoder


@torch.no_grad()
def fill(model: MaskedAutoencoder, batch: dict, modality: str, plan: MaskPlan, *, num_samples: int = 1,
         generator: torch.Generator | None = None, **settings) -> torch.Tensor:
    """The model's answers for `modality` at plan.predict, given the tokens at plan.keep (and every
    other modality of the model in `batch`, wholly visible): (S, B, Q, P), S = num_samples, in the
    target space of Tokens.target. `settings` go to a generative decoder (diffusion: steps, sampler,
    eta; MaskGIT: steps, temperature). A deterministic decoder answers once: num_samples must be 1.
    Every token of `batch` is tokenized: a tokenizer that looks at the whole input (VideoCodes' frozen
    VQ) lets the hidden content reach the visible tokens, so blank it first (mmmae.inpaint.blanked)."""
    if modality not in batch:
        raise ValueError(f"the batch has no {modality!r} entry (keys: {sorted(batch)})")
    decoder = fillable(model, modality)
    missing = [m for m in model.modalities if m not in batch]
    if decoder is model.decoder and missing:
        raise ValueError(f"{type(decoder).__name__} (MaskedAutoencoder.decoder) decodes every modality together: "
                         f"the batch needs them all, and lacks {missing} (mark a sample's absent modality with "
                         "batch['<modality>_present'] = False)")
    if hasattr(decoder, "fill"):
        return torch.stack([decoder.fill(model, batch, modality, plan, generator=generator, **settings)
                            for _ in range(num_samples)])
    if not hasattr(decoder, "sample"):
        if num_samples != 1 or settings:
            raise ValueError(f"{type(decoder).__name__}, the decoder of {modality!r}, is deterministic: it gives one "
                             f"answer and takes no sampling settings (asked for {num_samples} samples"
                             f"{', settings ' + str(settings) if settings else ''})")
        return answer(model, decoder, encode_with_plan(model, batch, modality, plan), modality)[None]
    outputs = encode_with_plan(model, batch, modality, plan)
    return torch.stack([drawn(model, decoder, outputs, modality, generator, settings) for _ in range(num_samples)])


def answer(model: MaskedAutoencoder, decoder: torch.nn.Module, outputs: dict[str, ModalityOutput],
           modality: str) -> torch.Tensor:
    """A deterministic decoder's forward: (B, Q, P) at the plan's predict."""
    if decoder is model.decoder:
        prediction = of_modality(decoder(*model_decoder_inputs(outputs)), decoder, modality)
    else:
        out = outputs[modality]
        prediction = decoder(out.encoded, out.tokens.grid, out.plan, **({} if out.cls is None else {"cls": out.cls}))
    return prediction.prediction if isinstance(prediction, Decoded) else prediction


def drawn(model: MaskedAutoencoder, decoder: torch.nn.Module, outputs: dict[str, ModalityOutput], modality: str,
          generator: torch.Generator | None, settings: dict) -> torch.Tensor:
    """One sample of a generative decoder: (B, Q, P) at the plan's predict."""
    if decoder is model.decoder:
        return of_modality(decoder.sample(*model_decoder_inputs(outputs), generator=generator, **settings),
                           decoder, modality)
    out = outputs[modality]
    extras = {} if out.cls is None else {"cls": out.cls}
    return decoder.sample(out.encoded, out.tokens.grid, out.plan, generator=generator, **extras, **settings)


def of_modality(answers: dict, decoder: torch.nn.Module, modality: str):
    """A model-level decoder's answer for `modality`; a clear error when it does not decode it."""
    if modality not in answers:
        raise ValueError(f"{type(decoder).__name__} (MaskedAutoencoder.decoder) does not predict {modality!r} "
                         f"(it predicts {sorted(answers)})")
    return answers[modality]


def model_decoder_inputs(outputs: dict[str, ModalityOutput]) -> tuple[dict, dict, dict, dict]:
    """(encoded, tokens, plans, present), each {m: ...}: what MaskedAutoencoder.decoder takes."""
    return ({m: o.encoded for m, o in outputs.items()}, {m: o.tokens for m, o in outputs.items()},
            {m: o.plan for m, o in outputs.items()}, {m: o.present for m, o in outputs.items()})


def drawable(model: MaskedAutoencoder, modality: str, pixels: torch.Tensor) -> None:
    """A ValueError naming why `modality`'s targets cannot be drawn as pixels, if they cannot."""
    owner = model.modalities[modality]
    tokenizer = owner.tokenizer
    if hasattr(tokenizer, "decode_targets"):
        return
    if owner.target is not None:
        raise ValueError(f"{modality!r} is trained to predict {type(owner.target).__name__}'s features "
                         f"({modality}/Modality.target), not pixels: its predictions cannot be drawn")
    if not isinstance(tokenizer, PixelTokenizer) or pixels.ndim not in (4, 5):
        raise ValueError(f"{modality!r} is tokenized by {type(tokenizer).__name__}, whose targets are not pixels "
                         "of a clip or an image: its predictions cannot be drawn")
    if getattr(tokenizer, "target_kernel", tokenizer.kernel) != tokenizer.kernel:
        raise ValueError(f"{modality!r}'s targets are frames subsampled from the clip (TubeletTokenizer."
                         "target_tubelet, MAE-ST), not the tubelets the encoder sees: they cannot be drawn over it")


def target_pixels(model: MaskedAutoencoder, modality: str, target: torch.Tensor, grid: tuple[int, ...],
                  pixels: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """Target tokens (B, N, P) (code ids (B, N)) of `modality` on `grid` for the input `pixels`
    (B, C, T, H, W) or (B, C, H, W) in [0, 1] -> pixels of that shape. known (B, N) bool: the tokens
    whose own pixels may supply the statistics of per-patch normalised targets; the others borrow
    their nearest known tokens'. A tokenizer with `decode_targets(target, grid)` (discrete codes)
    decodes them itself."""
    drawable(model, modality, pixels)
    tokenizer = model.modalities[modality].tokenizer
    if hasattr(tokenizer, "decode_targets"):
        return tokenizer.decode_targets(target, grid)
    kernel = tokenizer.kernel if pixels.ndim == 5 else tokenizer.kernel[1:]
    axes = dict(zip(("p0", "p1", "p2")[-len(kernel):], kernel))
    cut, lattice = ("(t p0) (h p1) (w p2)", "t h w") if pixels.ndim == 5 else ("(h p1) (w p2)", "h w")
    names = " ".join(axes)
    values = rearrange(target, f"b n ({names} c) -> b n c ({names})", **axes)  # (B, N, C, p)
    norm = tokenizer.norm_target
    if norm is True or norm == "mae":
        patches = rearrange(tokenizer.target_source(pixels), f"b c {cut} -> b ({lattice}) c ({names})", **axes)
        if norm is True:
            std, mean = torch.std_mean(patches, dim=-1, keepdim=True, unbiased=True)
            scale = std + 1e-6
        else:
            var, mean = torch.var_mean(patches, dim=(-2, -1), keepdim=True, unbiased=True)
            scale = (var + 1e-6).sqrt()
        mean, scale = nearest_known(torch.cat([mean, scale], dim=-1), grid, known).chunk(2, dim=-1)
        values = values * scale + mean
    sizes = dict(zip(lattice.split(), grid))
    clip = rearrange(values, f"b ({lattice}) c ({names}) -> b c {cut}", **sizes, **axes)
    if norm in MAE_TARGETS:
        shape = (-1,) + (1,) * (clip.ndim - 2)
        clip = clip * tokenizer.std.view(shape) + tokenizer.mean.view(shape)
    return clip


def nearest_known(stats: torch.Tensor, grid: tuple[int, ...], known: torch.Tensor) -> torch.Tensor:
    """Per-token statistics (B, N, ...) with each unknown token's replaced by the mean of its nearest
    known tokens' (Euclidean distance on the token grid, ties averaged); known (B, N) bool."""
    if not known.any(dim=1).all():
        raise ValueError("every token of a sample is hidden: no visible patch supplies the statistics that "
                         "per-patch normalised targets (norm_target) need; leave some of the input visible")
    axes = torch.meshgrid(*(torch.arange(n, device=stats.device, dtype=torch.float32) for n in grid), indexing="ij")
    coords = torch.stack([a.flatten() for a in axes], dim=-1)  # (N, len(grid))
    distance = torch.cdist(coords, coords)[None].expand(known.shape[0], -1, -1)  # (B, N, N)
    distance = distance.masked_fill(~known[:, None, :], float("inf"))
    nearest = (distance == distance.amin(dim=2, keepdim=True)).to(stats.dtype)
    borrowed = torch.einsum("bnm,bm...->bn...", nearest / nearest.sum(dim=2, keepdim=True), stats)
    keep = known.reshape(*known.shape, *(1,) * (stats.ndim - 2))
    return torch.where(keep, stats, borrowed)
