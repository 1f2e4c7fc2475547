"""Reconstruction figures in training: one per decoded modality, each drawn for its modality."""

import torch
from PIL import Image

from mmmae.masking.rng import MaskRNG
from mmmae.train import save_figures
from mmmae.viz_reconstruction import reconstruction_figure
from tests.test_viz_figure import drawn_outside
from tests.test_viz_mask import QUICKSTART, quickstart


@torch.no_grad()
def test_training_draws_a_readable_reconstruction_of_every_quickstart_modality(tmp_path):
    model, batch = quickstart(2)
    out = model(batch, MaskRNG.seeded(0))
    save_figures(model, batch, out, tmp_path, 3)
    assert (sorted(p.name for p in (tmp_path / "figures").iterdir())
            == sorted(f"{m}_step00000003.png" for m in QUICKSTART))
    for name in QUICKSTART:
        assert Image.open(tmp_path / "figures" / f"{name}_step00000003.png").size[0] >= 500
        fig = reconstruction_figure(model.modalities[name].tokenizer, batch[name], out.outputs[name], 1, name)
        assert drawn_outside(fig) == [], name


@torch.no_grad()
def test_a_modality_without_predictions_gets_no_reconstruction():
    model, batch = quickstart(2)
    output = model(batch, MaskRNG.seeded(0)).outputs["video"]
    output.prediction = None
    assert reconstruction_figure(model.modalities["video"].tokenizer, batch["video"], output, 0, "video") is None
