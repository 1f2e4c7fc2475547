"""`mmmae viz-mask`: what a recipe's maskers hide, drawn on real samples, one PNG per modality."""

from dataclasses import replace
from pathlib import Path

import gin
import numpy as np
import torch
from matplotlib.figure import Figure
from torch.utils.data import default_collate

from mmmae.masking.rng import MaskRNG
from mmmae.model import MaskedAutoencoder
from mmmae.tokenizers.audio import AudioTokenizer
from mmmae.tokenizers.imu import IMUGraphTokenizer
from mmmae.tokenizers.text import TextTokenizer
from mmmae.types import MaskPlan, Tokens
from mmmae.viz import clip_mask_figure
from mmmae.viz_audio import audio_mask_figure
from mmmae.viz_figure import MASKED, VISIBLE, new_figure, save_figure, token_states, whole_title
from mmmae.viz_imu import imu_mask_figure
from mmmae.viz_text import text_mask_figure

# The mask figure of each tokenizer kind that has its own drawing: (tokenizer, data, plan, title) -> Figure.
MASK_FIGURES = {AudioTokenizer: audio_mask_figure, IMUGraphTokenizer: imu_mask_figure, TextTokenizer: text_mask_figure}


def token_grid_figure(states: torch.Tensor, grid: tuple[int, ...], title: str) -> Figure:
    """One panel per sample of states (B, N) laid out on the token grid, its last axis across."""
    rows = int(torch.tensor(grid[:-1]).prod()) if len(grid) > 1 else 1
    fig = new_figure(max(6.0, 0.25 * grid[-1]), 0.3 * rows * len(states) + 1.2)
    axes = fig.subplots(len(states), 1, squeeze=False)
    for axis, sample in zip(axes[:, 0], states):
        axis.imshow(sample.view(rows, grid[-1]).numpy(), cmap="viridis", vmin=MASKED, vmax=VISIBLE)
        axis.set_xticks([])
        axis.set_yticks([])
    whole_title(fig, f"{title}\nyellow: visible, teal: predicted, purple: masked")
    return fig


def mask_figure(tokenizer: torch.nn.Module, data, tokens: Tokens, plan: MaskPlan, title: str) -> Figure:
    """The figure for one modality's batch `data` by its tokenizer: spectrograms (audio), signal
    plots per device (IMU), captions (text), frames (a tokenizer with figure_image), else the token grid."""
    for kind, draw in MASK_FIGURES.items():
        if isinstance(tokenizer, kind):
            return draw(tokenizer, data, plan, title)
    drawable = getattr(tokenizer, "figure_image", None)
    if drawable is not None and drawable(data.cpu()) is not None:
        return clip_mask_figure(tokenizer, data, plan, title)
    return token_grid_figure(token_states(plan, tokens.num_tokens), tokens.grid, title)


def token_counts(tokens: Tokens, plan: MaskPlan) -> str:
    """'per sample K of N tokens seen by the encoder, Q predicted by the decoder', padding left out
    (tokens.valid): where samples differ, each count is a range 'a-b' over the batch."""
    def count(index: torch.Tensor | None) -> str:
        if tokens.valid is None:
            return str(tokens.num_tokens if index is None else index.shape[1])
        real = tokens.valid if index is None else tokens.valid.gather(1, index)
        low, high = (int(n) for n in real.sum(dim=1).aminmax())
        return str(low) if low == high else f"{low}-{high}"

    return (f"per sample {count(plan.keep)} of {count(None)} tokens seen by the encoder, {count(plan.predict)} "
            "predicted by the decoder")


def sample_row(value, i: int):
    """Row i of a batch value, keeping the batch axis: a tensor's [i:i+1], a list's, a Tokens' fields'."""
    if isinstance(value, Tokens):
        return replace(value, embed=value.embed[i:i + 1], target=sample_row(value.target, i),
                       valid=sample_row(value.valid, i))
    return value[i:i + 1] if isinstance(value, torch.Tensor | list) else value


def widened(plan: MaskPlan, width: int, valid: torch.Tensor | None) -> MaskPlan:
    """One sample's plan (1, K) with padding tokens (valid (1, N) False) moved from predict to keep
    until keep holds `width`: what a padded masker does for the shorter samples of a batch."""
    extra = width - plan.keep.shape[1]
    if extra == 0:
        return plan
    padding = (~valid[0, plan.predict[0]]).nonzero().flatten()[:extra] if valid is not None else []
    if len(padding) < extra:
        raise ValueError(f"the masker kept {plan.keep.shape[1]} tokens of one sample and {width} of another, and "
                         "the first has too few padding tokens to even them out: draw one sample (--samples 1)")
    stays = torch.ones(plan.predict.shape[1], dtype=torch.bool)
    stays[padding] = False
    keep = torch.cat([plan.keep, plan.predict[:, padding]], dim=1).sort(dim=1).values
    return replace(plan, keep=keep, predict=plan.predict[:, stays],
                   loss_weight=None if plan.loss_weight is None else plan.loss_weight[:, stays])


def mask_each_sample(modality: torch.nn.Module, position: int, tokens: Tokens, batch: dict, seed: int) -> MaskPlan:
    """The masker's plan of each sample drawn alone, from a generator seeded by (seed, sample,
    modality position): a sample's mask does not depend on how many samples are drawn beside it.
    Samples whose plans keep fewer tokens (padded sequences) keep padding up to the widest (`widened`)."""
    plans = []
    for i in range(tokens.embed.shape[0]):
        rng = MaskRNG.seeded(int(np.random.SeedSequence([seed, i, position]).generate_state(1)[0]))
        plans.append(modality.mask(sample_row(tokens, i), {k: sample_row(v, i) for k, v in batch.items()}, rng))
    width = max(p.keep.shape[1] for p in plans)
    plans = [widened(p, width, sample_row(tokens.valid, i)) for i, p in enumerate(plans)]
    weights = [p.loss_weight for p in plans]
    return MaskPlan(torch.cat([p.keep for p in plans]), torch.cat([p.predict for p in plans]),
                    None if weights[0] is None else torch.cat(weights),
                    {k: torch.cat([p.aux[k] for p in plans]) for k in plans[0].aux})


@torch.no_grad()
def draw_masks(model: MaskedAutoencoder, batch: dict, seed: int, output_dir: Path) -> list[Path]:
    """Tokenize and mask each modality of `batch` as training does (`mask_each_sample`); one PNG per
    modality (`mask_figure`), <modality>_masks.png. Returns the paths written."""
    paths = []
    for position, (name, modality) in enumerate(model.modalities.items()):
        tokens = modality.tokenize(batch[name])
        plan = mask_each_sample(modality, position, tokens, batch, seed)
        title = f"{name}: {type(modality.masker).__name__}, {token_counts(tokens, plan)}"
        figure = mask_figure(modality.tokenizer, batch[name], tokens, plan, title)
        paths.append(save_figure(figure, output_dir / f"{name}_masks.png"))
    return paths


def visualize_masks(output_dir: str, samples: int = 4, seed: int = 0) -> list[Path]:
    """The masks of the parsed gin config's model (`pretrain.model`) on the first `samples`
    samples of its training data (`pretrain.dataset`), drawn with mask seed `seed`; each sample's
    masks are the same whatever `samples` is."""
    dataset = gin.query_parameter("pretrain.dataset").scoped_configurable_fn()
    model = gin.query_parameter("pretrain.model").scoped_configurable_fn()
    if not 0 < samples <= len(dataset):
        raise ValueError(f"--samples must lie in 1..{len(dataset)} (the dataset's size), got {samples}")
    batch = default_collate([dataset[i] for i in range(samples)])
    return draw_masks(model.eval(), batch, seed, Path(output_dir))
