"""Text tokenizer: the offline default, local tokenizer directories, caption encoding, Tokens."""

import pytest
import torch
from transformers import ByT5Tokenizer

from mmmae.tokenizers.text import TextTokenizer, encode_captions, load_text_tokenizer

CAPTIONS = ["seven moves left", "a three"]


def test_default_needs_no_files_and_is_cached():
    tokenizer = load_text_tokenizer()
    assert isinstance(tokenizer, ByT5Tokenizer)
    assert tokenizer.pad_token_id == 0 and len(tokenizer) == 384
    assert load_text_tokenizer() is tokenizer


def test_encode_captions_pads_and_round_trips():
    tokenizer = load_text_tokenizer()
    ids = encode_captions(CAPTIONS, tokenizer, 24)
    assert ids.shape == (2, 24) and ids.dtype == torch.int64
    assert tokenizer.batch_decode(ids, skip_special_tokens=True) == CAPTIONS
    assert (ids[1, len("a three") + 1 :] == tokenizer.pad_token_id).all()  # after the EOS: padding


def test_encode_captions_truncates_keeping_eos():
    tokenizer = load_text_tokenizer()
    ids = encode_captions(CAPTIONS, tokenizer, 5)
    assert ids.shape == (2, 5)
    assert ids[0, -1] == tokenizer.eos_token_id
    assert tokenizer.decode(ids[0], skip_special_tokens=True) == "seve"


def test_local_tokenizer_directory_loads(tmp_path):
    ByT5Tokenizer().save_pretrained(tmp_path)
    tokenizer = load_text_tokenizer(str(tmp_path))
    assert len(tokenizer) == 384
    ids = encode_captions(CAPTIONS, tokenizer, 24)
    assert torch.equal(ids, encode_captions(CAPTIONS, load_text_tokenizer(), 24))
    assert TextTokenizer(8, tokenizer_path=str(tmp_path)).target_dim == 384


@pytest.mark.parametrize("make_dir", [False, True])
def test_bad_path_names_it(tmp_path, make_dir):
    path = tmp_path / "no_tokenizer"
    if make_dir:
        path.mkdir()
    with pytest.raises(ValueError, match="no_tokenizer"):
        load_text_tokenizer(str(path))


def test_tokens_shapes_target_and_valid():
    tokenizer = TextTokenizer(dim=16)
    ids = encode_captions(CAPTIONS, load_text_tokenizer(), 12)
    tokens = tokenizer(ids)
    assert (tokenizer.dim, tokenizer.target_dim, tokenizer.pad_id) == (16, 384, 0)
    assert tokens.embed.shape == (2, 12, 16) and tokens.grid == (12,)
    assert torch.equal(tokens.target, ids)
    assert torch.equal(tokens.valid, ids != 0)
    assert tokens.valid[1].sum() == len("a three") + 1  # bytes and EOS


def test_positions_distinguish_equal_ids():
    tokens = TextTokenizer(dim=16)(torch.full((1, 4), 120))
    assert not torch.allclose(tokens.embed[0, 0], tokens.embed[0, 1])


@pytest.mark.parametrize("ids", [torch.zeros(2, 3, 4, dtype=torch.int64), torch.zeros(2, 3)])
def test_wrong_input_names_expected_and_got(ids):
    with pytest.raises(ValueError, match=r"\(B, L\) int64, got"):
        TextTokenizer(dim=8)(ids)
