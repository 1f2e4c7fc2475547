"""Head counts of converted checkpoints: an option, a source config, or a released width; never a guess."""

import pytest
import torch
from safetensors.torch import save_file

from mmmae.cli import main
from mmmae.zoo.convert.heads import MAE_DECODER_HEADS, VIT_HEADS, head_count
from mmmae.zoo.convert.videomae import convert
from mmmae.zoo.pretrained import build_model
from tests.zoo.convert.test_hf_videomae import check_parity
from tests.zoo.convert.test_videomae import official_hf, official_pretraining


@pytest.mark.parametrize("dim,heads", [(384, 6), (768, 12), (1024, 16), (1280, 16), (1408, 16)])
def test_a_released_width_takes_its_released_count_with_a_note(dim, heads):
    notes = []
    assert head_count({}, "heads", dim, VIT_HEADS, "layout", notes) == heads
    assert len(notes) == 1 and f"heads={heads}" in notes[0] and f"{dim}-wide" in notes[0]


def test_any_other_width_is_an_error_naming_the_width_and_the_option():
    with pytest.raises(ValueError, match=r"layout: the decoder is 96 wide.*pass --option decoder_heads=N with N "
                                         r"dividing 96"):
        head_count({}, "decoder_heads", 96, MAE_DECODER_HEADS, "layout", [], "decoder")


def test_an_option_wins_without_a_note_and_must_divide_the_width():
    notes = []
    assert head_count({"heads": "4"}, "heads", 768, VIT_HEADS, "layout", notes) == 4 and notes == []
    with pytest.raises(ValueError, match=r"option heads=5 does not divide the encoder width 96"):
        head_count({"heads": 5}, "heads", 96, VIT_HEADS, "layout", [])


def test_mmmae_convert_stops_with_one_message_and_writes_nothing(tmp_path, capsys):
    """A VideoMAE checkpoint with a 96-wide decoder: exit 1 asking for decoder_heads; then it converts."""
    state = official_pretraining(official_hf(decoder_hidden_size=96, decoder_intermediate_size=384))
    src, dst = tmp_path / "videomae.safetensors", tmp_path / "out"
    save_file({k: v.contiguous() for k, v in state.items()}, str(src))
    command = ["convert", "--from", "videomae", "--src", str(src), "--dst", str(dst), "--option", "heads=4"]
    with pytest.raises(SystemExit) as stopped:
        main(command)
    message = stopped.value.code
    assert isinstance(message, str) and "\n" not in message  # sys.exit(str): exit status 1, the message on stderr
    assert message.startswith("mmmae convert: VideoMAE checkpoint: the decoder is 96 wide")
    assert "--option decoder_heads=N" in message and not dst.exists()
    main(command + ["--option", "decoder_heads=2"])
    assert capsys.readouterr().out.strip() == str(dst)
    assert "video/MaskTokenDecoder.heads = 2" in (dst / "config.gin").read_text()


def test_released_widths_convert_to_a_model_that_matches_the_source():
    """A ViT-S-wide VideoMAE (384 / 6 heads, decoder 192 / 3) converts without options and reproduces HF."""
    hf = official_hf(hidden_size=384, num_attention_heads=6, intermediate_size=1536, num_hidden_layers=1,
                     decoder_hidden_size=192, decoder_num_attention_heads=3, decoder_intermediate_size=768)
    converted = convert(official_pretraining(hf), {})
    assert "Encoder.heads = 6" in converted.config and "video/MaskTokenDecoder.heads = 3" in converted.config
    assert sum("head count for a" in note for note in converted.metadata["notes"]) == 2
    model = build_model(converted.config)
    model.load_state_dict(converted.state_dict)
    with torch.no_grad():
        check_parity(model.eval(), hf, "ViT-S widths")
