"""MaskGIT decoding: the cosine unmasking schedule and filling the hidden codes of a clip."""

import pytest
import torch

from mmmae.config import parse_config
from mmmae.model import MaskedAutoencoder
from mmmae.nn.maskgit_decoding import MaskGITDecoder, unmasking_schedule
from mmmae.types import MaskPlan
from tests.test_recipes import MICRO
from tests.tokenizers.vq_models import CODES, clip, save_micro_vq


def test_schedule_follows_the_cosine_and_ends_with_nothing_unknown():
    assert unmasking_schedule(48, 4) == [44, 33, 18, 0]  # floor(48 cos(π/2 · s/4)), s = 1, 2, 3; then 0
    assert unmasking_schedule(3, 8) == [2, 1, 0]  # at least one settled an iteration
    assert unmasking_schedule(5, 1) == [0]
    assert unmasking_schedule(0, 8) == []
    with pytest.raises(ValueError, match="steps = 0"):
        unmasking_schedule(5, 0)


@pytest.fixture(scope="module")
def vq_folder(tmp_path_factory):
    return save_micro_vq(tmp_path_factory.mktemp("maskgit"))[0]


@pytest.fixture
def model(vq_folder) -> MaskedAutoencoder:
    parse_config(["recipes/motionaura.gin", MICRO], [f"VQ = '{vq_folder}'"])
    torch.manual_seed(0)
    return MaskedAutoencoder().eval()


def half_hidden(batch: int = 2) -> MaskPlan:
    order = torch.randperm(32, generator=torch.Generator().manual_seed(5))
    return MaskPlan(keep=order[:16].sort().values.repeat(batch, 1), predict=order[16:].sort().values.repeat(batch, 1))


def test_fill_changes_only_the_hidden_codes_over_several_encoder_passes(model, monkeypatch):
    decoder = model.modalities["video"].decoder
    assert isinstance(decoder, MaskGITDecoder)
    batch, plan = {"video": clip()}, half_hidden()
    passes = []
    run_encoder = model.run_encoder
    monkeypatch.setattr(model, "run_encoder", lambda parts, *a, **k: passes.append(parts["video"].shape[1])
                        or run_encoder(parts, *a, **k))
    codes = decoder.fill_codes(model, batch, "video", plan, generator=torch.Generator().manual_seed(0), steps=4)
    given = model.modalities["video"].tokenizer(batch["video"]).target
    assert passes == [16, 18, 21, 26]  # known: 16 given, then 32 minus unmasking_schedule(16, 4) = [14, 11, 6, 0]
    assert torch.equal(codes.gather(1, plan.keep), given.gather(1, plan.keep))
    assert codes.dtype == torch.int64 and int(codes.min()) >= 0 and int(codes.max()) < CODES
    filled = decoder.fill(model, batch, "video", plan, generator=torch.Generator().manual_seed(0), steps=4)
    assert filled.shape == (2, 16, 1) and filled.dtype == torch.float32
    assert torch.equal(filled[..., 0].long(), codes.gather(1, plan.predict))


def test_fill_is_deterministic_with_a_seeded_generator_and_varies_with_its_seed(model):
    decoder, batch, plan = model.modalities["video"].decoder, {"video": clip()}, half_hidden()

    def fill(seed: int) -> torch.Tensor:
        return decoder.fill(model, batch, "video", plan, generator=torch.Generator().manual_seed(seed), steps=3)

    assert torch.equal(fill(0), fill(0))
    assert any(not torch.equal(fill(0), fill(seed)) for seed in range(1, 4))
    greedy = [decoder.fill(model, batch, "video", plan, steps=3, temperature=0.0) for _ in range(2)]
    assert torch.equal(*greedy)


def test_fill_refuses_a_tokenizer_that_cannot_embed_codes(tmp_path):
    parse_config(["recipes/quickstart_video.gin", MICRO])
    model = MaskedAutoencoder().eval()
    decoder = MaskGITDecoder(in_dim=32, out_dim=8, dim=16, depth=1, heads=2)
    with pytest.raises(ValueError, match="video/Modality.tokenizer"):
        decoder.fill(model, {"video": clip()}, "video", half_hidden())
