"""`mmmae viz-mask`: a PNG per modality of what the recipe's maskers hide, each drawn for its modality."""

import gin
import pytest
import torch
from PIL import Image
from torch.utils.data import default_collate

from mmmae.cli import main
from mmmae.config import parse_config
from mmmae.masking.padded import PaddedRandomMasking
from mmmae.masking.rng import MaskRNG
from mmmae.model import MaskedAutoencoder
from mmmae.types import MaskPlan, Tokens
from mmmae.viz import masked_input
from mmmae.viz_mask import mask_each_sample, mask_figure, token_counts
from tests.test_recipes import MICRO
from tests.test_viz_figure import drawn_outside

QUICKSTART = ["video", "audio", "imu", "text"]


def quickstart(samples: int) -> tuple[MaskedAutoencoder, dict]:
    """The micro quickstart model (all four modalities) and a batch of its first training samples."""
    parse_config(["recipes/quickstart.gin", MICRO])
    dataset = gin.query_parameter("pretrain.dataset").scoped_configurable_fn()
    model = gin.query_parameter("pretrain.model").scoped_configurable_fn()
    return model, default_collate([dataset[i] for i in range(samples)])


def test_cli_draws_every_modality_of_the_multimodal_quickstart(tmp_path, capsys):
    main(["viz-mask", "--gin_file", "recipes/quickstart.gin", "--gin_file", MICRO, "--output_dir", str(tmp_path),
          "--samples", "2"])
    assert capsys.readouterr().out.split() == [str(tmp_path / f"{m}_masks.png") for m in QUICKSTART]
    for name in QUICKSTART:
        width, height = Image.open(tmp_path / f"{name}_masks.png").size
        assert width >= 500 and height >= 200


@torch.no_grad()
def test_each_quickstart_modality_gets_its_own_drawing_all_of_it_inside_the_figure():
    model, batch = quickstart(2)
    figures = {}
    for name, modality in model.modalities.items():
        tokens = modality.tokenize(batch[name])
        plan = modality.mask(tokens, batch, MaskRNG.seeded(0))
        figures[name] = mask_figure(modality.tokenizer, batch[name], tokens, plan, f"{name}: a title")
        assert drawn_outside(figures[name]) == [], name
    assert figures["video"].axes[0].get_title() == "frame 0"
    assert figures["audio"].axes[0].get_xlabel() == "time (s)"
    assert [ax.get_title() for ax in figures["imu"].axes[::2]] == [f"sample 0: {d}" for d in
                                                                   model.modalities["imu"].tokenizer.devices]
    assert "</s>" in [t.get_text() for t in figures["text"].axes[0].texts]


def test_a_modality_without_a_drawing_gets_its_token_grid():
    plan = MaskPlan(keep=torch.tensor([[0, 3], [1, 2]]), predict=torch.tensor([[1, 2], [0, 3]]))
    tokens = Tokens(embed=torch.zeros(2, 4, 1), target=None, grid=(2, 2))
    fig = mask_figure(torch.nn.Identity(), torch.zeros(2, 4), tokens, plan, "other")
    assert [ax.images[0].get_array().tolist() for ax in fig.axes] == [[[2, 1], [1, 2]], [[1, 2], [2, 1]]]


def test_masked_input_blacks_out_exactly_the_tokens_outside_keep():
    video = torch.rand(3, 4, 8, 8) + 0.1  # (C, T, H, W): 2x4x4 tubelets -> grid (2, 2, 2)
    shown = masked_input(video, torch.tensor([0, 5]), grid=(2, 2, 2), kernel=(2, 4, 4))
    assert torch.equal(shown[:, :2, :4, :4], video[:, :2, :4, :4])  # token 0: t 0, h 0, w 0
    assert torch.equal(shown[:, 2:, :4, 4:], video[:, 2:, :4, 4:])  # token 5: t 1, h 0, w 1
    assert (shown != 0).sum() == 2 * 3 * 2 * 4 * 4


def test_too_many_samples_is_refused(tmp_path):
    with pytest.raises(ValueError, match="--samples must lie in 1..8"):
        main(["viz-mask", "--gin_file", "recipes/videomae.gin", "--gin_file", MICRO, "--output_dir", str(tmp_path),
              "--samples", "9"])


def test_the_title_counts_only_real_tokens_and_gives_ranges_where_samples_differ():
    plan = MaskPlan(keep=torch.tensor([[0, 3], [1, 2]]), predict=torch.tensor([[1, 2], [0, 3]]))
    dense = Tokens(embed=torch.zeros(2, 4, 1), target=None, grid=(4,))
    assert token_counts(dense, plan) == "per sample 2 of 4 tokens seen by the encoder, 2 predicted by the decoder"
    padded = Tokens(embed=torch.zeros(2, 4, 1), target=None, grid=(4,),
                    valid=torch.tensor([[True, True, True, False], [True, True, True, True]]))
    assert token_counts(padded, plan) == "per sample 1-2 of 3-4 tokens seen by the encoder, 2 predicted by the decoder"


@pytest.mark.parametrize("recipe", ["recipes/quickstart.gin", "recipes/tgm.gin", "recipes/video_text.gin"])
def test_a_samples_masks_do_not_depend_on_how_many_samples_are_drawn(recipe):
    parse_config([recipe, MICRO])
    dataset = gin.query_parameter("pretrain.dataset").scoped_configurable_fn()
    model = gin.query_parameter("pretrain.model").scoped_configurable_fn().eval()
    plans = {}
    for samples in (2, 4):
        batch = default_collate([dataset[i] for i in range(samples)])
        for position, (name, modality) in enumerate(model.modalities.items()):
            tokens = modality.tokenize(batch[name])
            plans[name, samples] = mask_each_sample(modality, position, tokens, batch, seed=3)
    for name in model.modalities:
        two, four = plans[name, 2], plans[name, 4]
        assert torch.equal(two.keep, four.keep[:2]) and torch.equal(two.predict, four.predict[:2]), name
    assert not torch.equal(plans[name, 4].keep[0], plans[name, 4].keep[1])  # yet the samples differ


def test_padded_samples_of_different_lengths_keep_padding_up_to_the_widest():
    class Padded:  # a modality whose masker keeps a share of each sample's valid tokens
        def mask(self, tokens, batch, rng):
            return PaddedRandomMasking(0.5)(tokens, batch, rng)

    valid = torch.arange(8)[None] < torch.tensor([[3], [8]])  # 3 and 8 valid tokens of 8
    tokens = Tokens(embed=torch.zeros(2, 8, 4), target=torch.zeros(2, 8, 4), grid=(8,), valid=valid)
    plan = mask_each_sample(Padded(), 0, tokens, {}, seed=0)
    assert plan.keep.shape == (2, 4) and plan.predict.shape == (2, 4)  # sample 1 keeps 4 of 8; sample 0 1 of 3
    assert valid[0, plan.keep[0]].sum() == 1 and valid[1, plan.keep[1]].all()
    for sample in range(2):
        assert sorted(plan.keep[sample].tolist() + plan.predict[sample].tolist()) == list(range(8))
    assert token_counts(tokens, plan) == ("per sample 1-4 of 3-8 tokens seen by the encoder, 2-4 predicted by the "
                                          "decoder")
