"""`mmmae.score` (`score` here): a differentiable energy of a clip under a frozen masked autoencoder.

The energy is the masked-reconstruction error the model was trained to lower, averaged over
`draws` random masks: a clip the model finds typical (like its training clips) scores low, one
with content it cannot predict from its surroundings (noise, a pasted patch) scores high. Its
gradient reaches the input pixels, through the encoder's input and through the targets cut from
the pixels, so gradient steps on it move a clip toward what the model expects (docs/guidance.md).

Masks are uniform random tokens (MAE's count: int(N * (1 - ratio)) kept), drawn from `generator`:
every token is scored in about `ratio` of the draws, from a different context each time (its own
place in other frames included), so a corrupted region shows in the error wherever it is. Tube
masks (VideoMAE, what the zoo model trained on) hide a place in every frame at once; on the zoo
model they separate corrupted clips from clean ones as well at ratio 0.75 and less well at 0.9
(docs/guidance.md has the measurement). ratio 0.75 is the zoo model's training ratio.
"""

import torch

from mmmae.generate import decoder_of, everything_visible, model_decoder_inputs
from mmmae.masking.base import keep_of_remainder, split_by_noise
from mmmae.model import MaskedAutoencoder, decoder_extras
from mmmae.types import Decoded, MaskPlan, ModalityOutput, gather_tokens


def score(model: MaskedAutoencoder, clip: torch.Tensor, *, draws: int = 8, ratio: float = 0.75,
          generator: torch.Generator | None = None, modality: str = "video",
          context: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """The mean squared error of the model's predictions of the hidden tokens' targets, over
    `draws` random masks hiding `ratio` of the tokens: () for a clip (C, T, H, W) or a batch
    (B, C, T, H, W) (the mean over its clips; `energies` gives one per clip). `context`: the
    model's other modalities {m: input} for the same clips (one clip: no batch axis), wholly
    visible (SiamMCVAE's past frame when scoring the future, modality='view2').

    Differentiable in `clip`; freeze the model first (`model.requires_grad_(False)`, eval mode)
    so that only the clip gets gradients. Deterministic for a seeded `generator` (which also seeds
    the decoder's own draws, e.g. a diffusion decoder's timesteps and noise: its energy is its
    denoising loss). A model-level decoder that samples (VariationalDecoder) is scored through its
    `sample` at temperature 0 (z at the prior's mean), never its forward, whose posterior reads the
    hidden tokens. Discrete-code targets (VideoCodes) are refused: no gradient reaches the pixels."""
    check_clips(model, modality, clip, batched=clip.ndim != 4)
    one = clip.ndim == 4
    context = {m: x[None] if one else x for m, x in (context or {}).items()}
    return energies(model, clip[None] if one else clip, draws=draws, ratio=ratio, generator=generator,
                    modality=modality, context=context).mean()


def energies(model: MaskedAutoencoder, clips: torch.Tensor, *, draws: int = 8, ratio: float = 0.75,
             generator: torch.Generator | None = None, modality: str = "video",
             context: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """(B,): each clip's energy (see `score`), every draw of every clip in one encoder pass."""
    if draws < 1:
        raise ValueError(f"score: draws = {draws}, need at least 1")
    check_clips(model, modality, clips, batched=True)
    decoder = decoder_of(model, modality)
    batch = {m: x.repeat_interleave(draws, dim=0) for m, x in {**(context or {}), modality: clips}.items()}
    missing = [m for m in model.modalities if m not in batch]
    if decoder is model.decoder and missing:
        raise ValueError(f"score: {type(decoder).__name__} (MaskedAutoencoder.decoder) decodes every modality "
                         f"together: give the others as context={{name: input}} (missing {missing})")
    tokens = {m: model.modalities[m].tokenize(x, with_target=m == modality) for m, x in batch.items()}
    if not tokens[modality].target.is_floating_point():
        tokenizer = type(model.modalities[modality].tokenizer).__name__
        raise ValueError(f"score: {modality!r} is tokenized into discrete ids ({tokenizer}), which no gradient "
                         "crosses back to the pixels; score a model that reconstructs pixels")
    embed, num_tokens = tokens[modality].embed, tokens[modality].num_tokens
    num_keep = keep_of_remainder("score", ratio, num_tokens, units="tokens")
    noise = torch.rand(embed.shape[0], num_tokens, generator=generator).to(embed.device)
    keep, predict = split_by_noise(noise, num_keep)
    plans = {m: MaskPlan(keep, predict) if m == modality else everything_visible(t) for m, t in tokens.items()}
    outputs = model.encode_visible(tokens, plans, batch)
    cuda = [torch.cuda.current_device() if clips.device.index is None else clips.device.index
            ] if clips.device.type == "cuda" else []  # fork and reseed the CPU's and the clip's CUDA device's
    with torch.random.fork_rng(devices=cuda, enabled=generator is not None):
        if generator is not None:  # the decoder's own draws (a diffusion decoder's steps and noise) follow it too
            seed = int(torch.randint(2**62, (), generator=generator))
            torch.default_generator.manual_seed(seed)
            if cuda:
                torch.cuda.default_generators[cuda[0]].manual_seed(seed)
        answer = prediction(model, decoder, outputs, modality)
    target = gather_tokens(tokens[modality].target, predict)
    if isinstance(answer, Decoded):
        answer, target = answer.prediction, target if answer.target is None else answer.target
    error = (answer - target).pow(2).mean(dim=(1, 2))  # (B * draws,)
    return error.view(clips.shape[0], draws).mean(dim=1)


def check_clips(model: MaskedAutoencoder, modality: str, clips: torch.Tensor, batched: bool) -> None:
    """A ValueError naming the `modality` argument when the model has no such modality, or the shape
    its tokenizer takes when `clips` is not one clip (C, T, H, W) or a batch (B, C, T, H, W) of them."""
    if modality not in model.modalities:
        raise ValueError(f"score: modality={modality!r}, but the model's modalities are {list(model.modalities)}: "
                         "pass modality= one of them")
    tokenizer = model.modalities[modality].tokenizer
    if len(getattr(tokenizer, "kernel", ())) != 3:
        return
    channels = getattr(getattr(tokenizer, "proj", None), "in_channels", None)
    expected = f"(B, {'C' if channels is None else channels}, T, H, W)"
    ndim = 5 if batched else 4
    if clips.ndim != ndim or (channels is not None and clips.shape[-4] != channels):
        raise ValueError(f"score: {modality!r} ({type(tokenizer).__name__}) takes a clip "
                         f"{expected.replace('(B, ', '(')} or a batch {expected}, got a tensor of shape "
                         f"{tuple(clips.shape)}")


def prediction(model: MaskedAutoencoder, decoder: torch.nn.Module, outputs: dict[str, ModalityOutput],
               modality: str) -> torch.Tensor | Decoded:
    """The decoder's answer for `modality` at its plan's predict, reading no hidden token: a
    model-level decoder that samples answers by its sample at temperature 0 (its forward may
    read the hidden tokens, as VariationalDecoder's posterior does); any other by its forward."""
    out = outputs[modality]
    if decoder is not model.decoder:
        return decoder(out.encoded, out.tokens.grid, out.plan, **decoder_extras(decoder, out))
    if hasattr(decoder, "sample"):
        return decoder.sample(*model_decoder_inputs(outputs), temperature=0.0)[modality]
    return decoder(*model_decoder_inputs(outputs))[modality]
