"""`mmmae viz-mask`: what a recipe's maskers hide, drawn on real samples, one PNG per modality."""

from pathlib import Path

import gin
import matplotlib.pyplot as plt
import torch
from torch.utils.data import default_collate

from mmmae.masking.rng import MaskRNG
from mmmae.model import MaskedAutoencoder
from mmmae.types import MaskPlan
from mmmae.viz import masked_input, save_rows_png

# token states in a token-grid figure
MASKED, PREDICTED, VISIBLE = 0, 1, 2


def token_states(plan: MaskPlan, num_tokens: int) -> torch.Tensor:
    """(B, N) int: VISIBLE where the encoder sees the token, PREDICTED where the decoder predicts
    it (and the encoder does not see it), MASKED elsewhere."""
    states = torch.full((plan.keep.shape[0], num_tokens), MASKED, dtype=torch.long)
    states.scatter_(1, plan.predict.cpu(), PREDICTED)
    return states.scatter_(1, plan.keep.cpu(), VISIBLE)


def save_token_grid_png(path: Path, states: torch.Tensor, grid: tuple[int, ...], title: str) -> None:
    """One panel per sample of states (B, N) laid out on the token grid, its last axis across."""
    rows = int(torch.tensor(grid[:-1]).prod()) if len(grid) > 1 else 1
    fig, axes = plt.subplots(len(states), 1, figsize=(max(3.0, 0.25 * grid[-1]), 0.3 * rows * len(states) + 1),
                             squeeze=False)
    for axis, sample in zip(axes[:, 0], states):
        axis.imshow(sample.view(rows, grid[-1]).numpy(), cmap="viridis", vmin=MASKED, vmax=VISIBLE)
        axis.set_xticks([])
        axis.set_yticks([])
    fig.suptitle(f"{title}\nyellow: visible, teal: predicted, purple: masked", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


@torch.no_grad()
def draw_masks(model: MaskedAutoencoder, batch: dict, rng: MaskRNG, output_dir: Path) -> list[Path]:
    """Tokenize and mask each modality of `batch` as training does; one PNG per modality:
    clips and spectrograms as rows input / encoder sees / decoder predicts per sample, other
    modalities as their token grid. Returns the paths written."""
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, modality in model.modalities.items():
        tokens = modality.tokenize(batch[name])
        plan = modality.mask(tokens, batch, rng)
        path = output_dir / f"{name}_masks.png"
        title = f"{name}: {type(modality.masker).__name__}, {plan.keep.shape[1]} of {tokens.num_tokens} tokens visible"
        drawable = getattr(modality.tokenizer, "figure_image", None)
        figure = drawable(batch[name]) if drawable else None
        if figure is None:
            save_token_grid_png(path, token_states(plan, tokens.num_tokens), tokens.grid, title)
        else:
            image, kernel, grid = figure
            rows = {}
            for i in range(image.shape[0]):
                rows[f"{i}: input"] = image[i]
                rows[f"{i}: encoder"] = masked_input(image[i], plan.keep[i].cpu(), grid, kernel)
                rows[f"{i}: decoder"] = masked_input(image[i], plan.predict[i].cpu(), grid, kernel)
            save_rows_png(path, rows, title)
        paths.append(path)
    return paths


def visualize_masks(output_dir: str, samples: int = 4, seed: int = 0) -> list[Path]:
    """The masks of the parsed gin config's model (`pretrain.model`) on the first `samples`
    samples of its training data (`pretrain.dataset`), drawn with mask seed `seed`."""
    dataset = gin.query_parameter("pretrain.dataset").scoped_configurable_fn()
    model = gin.query_parameter("pretrain.model").scoped_configurable_fn()
    if not 0 < samples <= len(dataset):
        raise ValueError(f"--samples must lie in 1..{len(dataset)} (the dataset's size), got {samples}")
    batch = default_collate([dataset[i] for i in range(samples)])
    return draw_masks(model.eval(), batch, MaskRNG.seeded(seed), Path(output_dir))
