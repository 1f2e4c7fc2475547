"""`mmmae inpaint`: visible pixels come back bit for bit, the mp4 and the PNG are written, generative decoders
give different samples, and every user error is one message with nothing written."""

import av
import numpy as np
import pytest
import torch
from PIL import Image

import mmmae.zoo.pretrained
from mmmae.cli import main
from mmmae.config import parse_config
from mmmae.data.media.synthetic import write_mp4
from mmmae.generate import fillable
from mmmae.inpaint import check_context, check_inpaintable, inpaint_clips
from mmmae.inpaint_masks import parse_mask
from mmmae.masking.random import RandomMasking
from mmmae.model import MaskedAutoencoder, Modality
from mmmae.nn.encoder import Encoder
from mmmae.objectives.reconstruction import Reconstruction
from tests.generation_fakes import CodeFiller, GreyCodes, SamplingDecoder, video_model
from tests.refusal import refusal
from tests.test_recipes import MICRO
from tests.tokenizers.vq_models import clip as vq_clip
from tests.tokenizers.vq_models import save_micro_vq

ZOO = "tiny-video-movingdigits"
DATA_GIN = """inpaint.dataset = @MovingDigits()
MovingDigits.split = 'test'
MovingDigits.num_samples = 8
MovingDigits.frames = 8
MovingDigits.size = 16
MovingDigits.digit_size = 12
MovingDigits.modalities = ('video',)
"""


def decoded(path) -> np.ndarray:
    """(T, H, W, 3) uint8 frames of an mp4."""
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def panel(frames: np.ndarray, row: int, column: int, size: int = 16) -> np.ndarray:
    """One clip's panel (T, size, size, 3) of the mp4's grid (rows: clips; columns: panels)."""
    return frames[:, row * size:(row + 1) * size, column * size:(column + 1) * size]


@pytest.mark.parametrize("spec", ["box:1,1,6,6@1-3", "span:2-3", "random:0.5", "random:0.3+span:0-2", "FILE.png",
                                  "FILE.npy+span:0-1"])
def test_visible_pixels_are_bit_identical_for_every_mask_kind(spec, tmp_path):
    image = np.zeros((16, 16), np.uint8)
    image[9:12, 1:4] = 255
    Image.fromarray(image).save(tmp_path / "FILE.png")
    np.save(tmp_path / "FILE.npy", image > 0)
    spec = spec.replace("FILE", str(tmp_path / "FILE"))
    model = video_model()
    clips = torch.rand(2, 3, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(0)
    mask = torch.stack([parse_mask(spec).pixels((4, 16, 16), (2, 8, 8), generator) for _ in range(2)])
    filled = inpaint_clips(model, clips, mask, "video")
    visible = ~mask[:, None].expand_as(clips)
    assert torch.equal(filled[0][visible], clips[visible])
    assert not torch.equal(filled[0][~visible], clips[~visible])


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "data.gin"
    path.write_text(DATA_GIN)
    return path


def test_the_zoo_model_fills_a_dataset_box_and_writes_the_mp4_and_the_grid(data_file, tmp_path, capsys):
    out = tmp_path / "out" / "box"
    main(["inpaint", "--model", ZOO, "--input", str(data_file), "--mask", "box:4,4,12,12@2-6", "--clips", "2",
          "--output", str(out)])
    assert capsys.readouterr().out.split() == [str(out) + ".mp4", str(out) + ".png"]
    frames = decoded(out.with_suffix(".mp4"))
    assert frames.shape == (8, 2 * 16, 3 * 16, 3)  # 2 clips x (input, masked, filled)
    mask = np.zeros((8, 16, 16), bool)
    mask[2:6, 4:12, 4:12] = True
    for clip in range(2):
        given, filled = panel(frames, clip, 0), panel(frames, clip, 2)
        assert np.array_equal(filled[~mask], given[~mask])
        assert not np.array_equal(filled[mask], given[mask])
    assert Image.open(out.with_suffix(".png")).size[0] > 300


def test_a_video_file_is_cut_to_the_models_clip_and_its_span_filled(tmp_path, capsys):
    video = np.random.default_rng(0).random((3, 20, 32, 48))
    write_mp4(tmp_path / "clip.mp4", video, fps=8)
    out = tmp_path / "clip_filled"
    main(["inpaint", "--model", ZOO, "--input", str(tmp_path / "clip.mp4"), "--mask", "span:3-5", "--output",
          str(out)])
    frames = decoded(out.with_suffix(".mp4"))
    assert frames.shape == (8, 16, 3 * 16, 3)
    assert np.array_equal(panel(frames, 0, 2)[[0, 1, 2, 5, 6, 7]], panel(frames, 0, 0)[[0, 1, 2, 5, 6, 7]])


def generative_model(monkeypatch):
    model = video_model(SamplingDecoder)
    monkeypatch.setattr(mmmae.zoo.pretrained, "from_pretrained", lambda source: model)
    return model


def test_a_generative_decoder_gives_n_different_samples_and_their_mean(monkeypatch, tmp_path):
    generative_model(monkeypatch)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 24, 3), np.uint8)).save(tmp_path / "still.png")
    out = tmp_path / "gen"
    main(["inpaint", "--model", ZOO, "--input", str(tmp_path / "still.png"), "--mask", "box:0,0,8,16",
          "--samples", "3", "--steps", "5", "--frames", "4", "--size", "16", "--output", str(out)])
    frames = decoded(out.with_suffix(".mp4"))
    assert frames.shape == (4, 16, 6 * 16, 3)  # input, masked, 3 samples, mean
    samples = [panel(frames, 0, c)[:, :8] for c in (2, 3, 4)]
    assert not np.array_equal(samples[0], samples[1]) and not np.array_equal(samples[1], samples[2])
    assert all(np.array_equal(panel(frames, 0, c)[:, 8:], panel(frames, 0, 0)[:, 8:]) for c in (2, 3, 4, 5))


def undrawable(model):
    model.modalities["video"].tokenizer.target_kernel = (1, 8, 8)


def without_decoder(model):
    model.modalities["video"].decoder = None


@pytest.mark.parametrize("flags, change, message", [
    (["--input", "MISSING.mp4", "--mask", "span:0-2"], None, "--input MISSING.mp4: no such file or folder"),
    (["--input", "DATA", "--mask", "box:1,2"], None, "--mask 'box:1,2': cannot read 'box:1,2'"),
    (["--input", "DATA", "--mask", "box:0,0,40,4"], None, "box 0,0,40,4@0-8 does not fit the clip of 8 frames"),
    (["--input", "DATA", "--mask", "span:0-8"], None, "the mask must leave some tokens of every clip visible"),
    (["--input", "DATA", "--mask", "span:0-2", "--samples", "2"], None, "is deterministic and gives one answer"),
    (["--input", "DATA", "--mask", "span:0-2", "--modality", "audio"], None, "the model has no modality 'audio'"),
    (["--input", "DATA", "--mask", "span:0-2", "--frames", "3"], None, "does not divide into patches"),
    (["--input", "DATA", "--mask", "span:0-2", "--frames", "4", "--size", "16"], without_decoder,
     "the model has no decoder for 'video'"),
    (["--input", "DATA", "--mask", "span:0-2", "--frames", "4", "--size", "16"], undrawable,
     "frames subsampled from the clip"),
])
def test_user_errors_are_one_message_and_write_nothing(flags, change, message, data_file, tmp_path, capsys,
                                                       monkeypatch):
    if change is not None:
        change(generative_model(monkeypatch))
    flags = [str(data_file) if f == "DATA" else f for f in flags]
    out = tmp_path / "out"
    got = refusal(["inpaint", "--model", ZOO, *flags, "--output", str(out / "x")], capsys)
    assert got.startswith("mmmae inpaint: ") and message in got
    assert not out.exists()



def test_code_targets_are_filled_and_drawn_by_the_tokenizers_decode_targets():
    model = MaskedAutoencoder([Modality("video", GreyCodes(), RandomMasking(0.5), decoder=CodeFiller)],
                              lambda modalities: Encoder(modalities, dim=32, depth=1, heads=2),
                              [Reconstruction("video")]).eval()
    clips = torch.rand(1, 3, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    mask = parse_mask("box:0,0,8,8@0-2").pixels((4, 16, 16), (2, 8, 8))[None]
    filled = inpaint_clips(model, clips, mask)[0]
    assert torch.equal(filled[:, :, :2, :8, :8], torch.full((1, 3, 2, 8, 8), 0.7))
    assert torch.equal(filled[~mask[:, None].expand_as(clips)], clips[~mask[:, None].expand_as(clips)])


@pytest.fixture(scope="module")
def vq_folder(tmp_path_factory):
    return save_micro_vq(tmp_path_factory.mktemp("inpaint_vq"))[0]


def code_model(vq_folder) -> MaskedAutoencoder:
    parse_config(["recipes/motionaura.gin", MICRO], [f"VQ = '{vq_folder}'"])
    torch.manual_seed(0)
    return MaskedAutoencoder().eval()


@pytest.mark.parametrize("kind", ["patches", "codes"])
def test_the_masked_pixels_never_reach_the_model(kind, vq_folder):
    model = video_model() if kind == "patches" else code_model(vq_folder)
    clips = vq_clip(batch=1)
    mask = parse_mask("box:4,4,12,12@0-2").pixels((4, 16, 16), (2, 4, 4))[None]
    other = torch.where(mask[:, None], 1 - clips, clips)  # the masked pixels changed, nothing else
    filled, again = (inpaint_clips(model, c, mask, generator=torch.Generator().manual_seed(0))[0]
                     for c in (clips, other))
    hidden = mask[:, None].expand_as(clips)
    assert torch.equal(filled[hidden], again[hidden])
    assert torch.equal(filled[~hidden], clips[~hidden]) and torch.equal(again[~hidden], clips[~hidden])


def test_a_vq_first_stage_is_refused_with_the_maskgit_recipe_to_use(data_file, tmp_path, capsys):
    out = tmp_path / "out"
    got = refusal(["inpaint", "--model", "tiny-vq-movingdigits", "--input", str(data_file), "--mask", "span:0-2",
                   "--output", str(out / "x")], capsys)
    assert got.startswith("mmmae inpaint: ") and "cannot fill hidden ones" in got and "recipes/motionaura.gin" in got
    assert "PredictEveryToken" not in got and not out.exists()


def test_a_data_file_that_does_not_bind_inpaint_dataset_is_named(tmp_path, capsys):
    data = tmp_path / "unbound.gin"
    data.write_text(DATA_GIN.replace("inpaint.dataset = @MovingDigits()\n", ""))
    got = refusal(["inpaint", "--model", ZOO, "--input", str(data), "--mask", "span:0-2",
                   "--output", str(tmp_path / "out" / "x")], capsys)
    assert f"--input {data}: the data file does not bind inpaint.dataset" in got


@pytest.mark.parametrize("flag", ["--input FILE", "--input FOLDER", "--mask FILE"])
def test_a_corrupt_image_is_named_with_its_flag(flag, data_file, tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "bad.png").write_bytes(b"P5\n")  # a header cut short
    given = {"FILE": str(folder / "bad.png"), "FOLDER": str(folder)}
    name, value = flag.split()
    flags = {"--input": str(data_file), "--mask": "span:0-2", name: given[value]}
    got = refusal(["inpaint", "--model", ZOO, *(x for pair in flags.items() for x in pair),
                   "--output", str(tmp_path / "out" / "x")], capsys)
    assert f"{name} " in got and str(folder / "bad.png") in got and "cannot read" in got


@pytest.mark.parametrize("recipe, modality, message", [
    ("audiovisual_mae", "audio", r"--modality audio: 'audio' is tokenized by AudioTokenizer, not as clips .* "
                                 r"clip modalities: \['video'\]"),
])
def test_modalities_inpaint_cannot_fill_from_a_clip_alone_are_refused_up_front(recipe, modality, message):
    parse_config([f"recipes/{recipe}.gin", MICRO])
    model = MaskedAutoencoder()
    with pytest.raises(ValueError, match=message):
        check_inpaintable(model, modality, fillable(model, modality))


def test_a_frame_pair_model_fills_the_future_from_a_dataset_that_carries_the_past(tmp_path, capsys):
    """SiamMCVAE's decoder needs the past frame: a data file's FramePairs give it (seen whole); a lone
    video cannot, and is refused naming --input."""
    from mmmae.train import pretrain

    parse_config(["recipes/siammcvae.gin", MICRO])
    pretrain(output_dir=str(tmp_path / "run"))
    pairs = tmp_path / "pairs.gin"
    pairs.write_text("inpaint.dataset = @FramePairs()\nFramePairs.dataset = @MovingDigits()\n"
                     "MovingDigits.split = 'test'\nMovingDigits.num_samples = 4\nMovingDigits.frames = 4\n"
                     "MovingDigits.size = 16\nMovingDigits.digit_size = 8\n")
    out = tmp_path / "out" / "pairs"
    main(["inpaint", "--model", str(tmp_path / "run"), "--input", str(pairs), "--modality", "view2",
          "--mask", "box:4,4,12,12", "--samples", "2", "--clips", "2", "--output", str(out)])
    assert out.with_suffix(".mp4").is_file() and out.with_suffix(".png").is_file()
    model = mmmae.zoo.pretrained.from_pretrained(str(tmp_path / "run"))
    with pytest.raises(ValueError, match=r"--input clip.mp4: VariationalDecoder .* needs the model's other "
                                         r"modalities \['view1'\] as context.*FramePairs"):
        check_context(model, "view2", model.decoder, "clip.mp4", {})
