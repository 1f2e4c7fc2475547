"""`pretrain.init_from` / `mmmae train --init_from`: start from another model's matching weights."""

import json

import pytest
import torch
from safetensors.torch import load_file

import mmmae.train
from mmmae.config import parse_config
from mmmae.init_from import load_matching_weights
from mmmae.model import MaskedAutoencoder
from mmmae.train import pretrain
from tests.conftest import MICRO_GIN


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A finished two-step micro run."""
    run = tmp_path_factory.mktemp("source")
    parse_config([MICRO_GIN], ["pretrain.steps = 2"])
    pretrain(output_dir=str(run))
    return run


def test_a_model_of_the_same_config_takes_every_weight(source):
    parse_config([MICRO_GIN], ["pretrain.seed = 5"])
    model = MaskedAutoencoder()
    report = load_matching_weights(model, str(source))
    stored = load_file(str(source / "model.safetensors"))
    assert report.kept == [] and report.ignored == [] and report.reshaped == {}
    assert report.loaded == sorted(stored)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in stored.items())


def test_weights_of_another_shape_keep_their_initialisation_and_are_reported(source):
    parse_config([MICRO_GIN], ["DEC_DIM = 24"])  # the decoder is wider; the encoder is the same
    model = MaskedAutoencoder()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = load_matching_weights(model, str(source))
    stored = load_file(str(source / "model.safetensors"))
    after = model.state_dict()
    assert report.reshaped["modalities.video.decoder.embed.weight"] == [[16, 32], [24, 32]]
    assert all(k.startswith("modalities.video.decoder.") for k in report.reshaped)
    assert all(torch.equal(after[k], before[k]) for k in report.reshaped)
    assert all(torch.equal(after[k], stored[k]) for k in report.loaded)
    assert "encoder.norm.weight" in report.loaded
    assert any("of another shape (kept at initialisation)" in line for line in report.lines())


def test_pretrain_starts_from_the_source_and_writes_the_report(source, tmp_path, monkeypatch):
    start = {}
    original = mmmae.train.train_loop

    def recording_loop(accelerator, net, *args):  # the weights the first step starts from
        start.update({k: v.clone() for k, v in accelerator.unwrap_model(net).state_dict().items()})
        return original(accelerator, net, *args)

    monkeypatch.setattr(mmmae.train, "train_loop", recording_loop)
    parse_config([MICRO_GIN], ["pretrain.steps = 1", "pretrain.seed = 5", f"pretrain.init_from = '{source}'"])
    pretrain(output_dir=str(tmp_path))
    stored = load_file(str(source / "model.safetensors"))
    assert all(torch.equal(start[k], v) for k, v in stored.items())
    report = json.loads((tmp_path / "init_from.json").read_text())
    assert report["source"] == str(source) and report["loaded"] == sorted(stored) and report["kept"] == []


def test_resuming_ignores_init_from(source, tmp_path):
    """The checkpoint holds the weights: a resumed run needs no source (here: one deleted since), and
    may drop the binding."""
    params = ["pretrain.steps = 2", "pretrain.save_every = 1", f"pretrain.init_from = '{tmp_path / 'gone'}'"]
    (tmp_path / "gone").mkdir()
    for name in ("model.safetensors", "config.gin"):
        (tmp_path / "gone" / name).write_bytes((source / name).read_bytes())
    parse_config([MICRO_GIN], params)
    pretrain(output_dir=str(tmp_path / "run"))
    for name in ("model.safetensors", "config.gin"):
        (tmp_path / "gone" / name).unlink()
    parse_config([MICRO_GIN], [*params[:2], "pretrain.steps = 3", params[2]])
    assert pretrain(output_dir=str(tmp_path / "run"), resume=True)["steps"] == 3
    parse_config([MICRO_GIN], [*params[:2], "pretrain.steps = 4"])  # extended again, without init_from
    assert pretrain(output_dir=str(tmp_path / "run"), resume=True)["steps"] == 4
