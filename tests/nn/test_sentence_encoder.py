"""FrozenSentenceEncoder: pinned weights, sentence-transformers parity, caching, frozen and unregistered."""

import pytest
import torch
from torch import nn

from mmmae.nn import sentence_encoder
from mmmae.nn.sentence_encoder import PINNED_SHA256, WEIGHTS_FILE, FrozenSentenceEncoder, batch_captions
from tests.float32_bound import rounding_bound

CAPTIONS = ["a seven moves quickly to the upper left", "a one moves slowly up", "an eight moves steadily down"]
# sentence-transformers 6.2 SentenceTransformer(<packaged folder>).encode(CAPTIONS), computed once offline.
REFERENCE_FIRST_DIMS = [-0.007993, -0.019531, 0.017223, 0.026288]  # of CAPTIONS[0]
REFERENCE_COSINES = {(0, 1): 0.518216, (0, 2): 0.650409, (1, 2): 0.587508}
PRINTED = 5e-7  # the references' last printed digit
# MiniLM-L6's float32 rounding: the embedding norm, 6 layers, the mean pooling and the normalisation; the longest
# sum, the 1536 hidden units of its MLPs (a cosine: one more stage, its 384 products)
STAGES, TERMS = 1 + 6 + 2, 1536


@pytest.fixture(scope="module")
def encoder() -> FrozenSentenceEncoder:
    return FrozenSentenceEncoder()


@pytest.fixture(scope="module")
def corrupted_copy(tmp_path_factory):
    """The packaged folder (links) with one byte of model.safetensors flipped: the last byte, which
    belongs to pooler.dense.weight, a tensor that mean pooling never uses."""
    folder = tmp_path_factory.mktemp("minilm")
    for source in sentence_encoder.packaged_model_path().iterdir():
        if source.name != WEIGHTS_FILE:
            (folder / source.name).symlink_to(source)
    data = bytearray((sentence_encoder.packaged_model_path() / WEIGHTS_FILE).read_bytes())
    data[-1] ^= 0xFF
    (folder / WEIGHTS_FILE).write_bytes(data)
    return folder


def test_pinned_hash_is_that_of_the_installed_weights():
    assert sentence_encoder.file_sha256(sentence_encoder.packaged_model_path() / WEIGHTS_FILE) == PINNED_SHA256


def test_a_corrupted_packaged_model_fails_naming_the_file_and_both_hashes(corrupted_copy, monkeypatch):
    monkeypatch.setattr(sentence_encoder, "packaged_model_path", lambda: corrupted_copy)
    actual = sentence_encoder.file_sha256(corrupted_copy / WEIGHTS_FILE)
    with pytest.raises(ValueError) as error:
        FrozenSentenceEncoder()
    message = str(error.value)
    assert str(corrupted_copy / WEIGHTS_FILE) in message and PINNED_SHA256 in message and actual in message
    assert actual != PINNED_SHA256


def test_a_local_folder_is_checked_only_against_a_given_hash(corrupted_copy, encoder):
    with pytest.raises(ValueError, match=f"expected {PINNED_SHA256} but the file has"):
        FrozenSentenceEncoder(path=str(corrupted_copy), sha256=PINNED_SHA256)
    unchecked = FrozenSentenceEncoder(path=str(corrupted_copy))  # loads: only the unused pooler differs
    torch.testing.assert_close(unchecked(CAPTIONS), encoder(CAPTIONS))


def test_matches_sentence_transformers_reference(encoder):
    embedded = encoder.encode(CAPTIONS)
    assert embedded.shape == (3, 384) and embedded.dtype == torch.float32
    torch.testing.assert_close(embedded[0, :4], torch.tensor(REFERENCE_FIRST_DIMS), rtol=0,
                               atol=PRINTED + rounding_bound(embedded, STAGES, TERMS))
    for (i, j), cosine in REFERENCE_COSINES.items():
        bound = PRINTED + rounding_bound(torch.tensor(cosine), STAGES + 1, TERMS)
        assert (embedded[i] @ embedded[j]).item() == pytest.approx(cosine, abs=bound)


def test_embeddings_are_unit_norm_deterministic_and_cached(encoder):
    first = encoder(CAPTIONS)
    assert torch.allclose(first.norm(dim=-1), torch.ones(3), atol=rounding_bound(torch.ones(1), 2, 384), rtol=0)
    assert torch.equal(encoder(CAPTIONS[::-1]), first.flip(0)), "a cached caption returns its embedding"
    alone = encoder.encode([CAPTIONS[1]])  # uncached, without the padding of a longer caption
    torch.testing.assert_close(alone[0], first[1], atol=rounding_bound(first, STAGES, TERMS), rtol=0)
    assert encoder([]).shape == (0, 384)


def test_similar_captions_are_closer_than_unrelated_ones(encoder):
    a, b, c = encoder(["a seven moves quickly to the left", "a seven moves fast to the left",
                       "the stock market closed higher on friday"])
    assert a @ b > a @ c + 0.3


def test_cache_drops_the_least_recently_used(encoder, monkeypatch):
    monkeypatch.setattr(sentence_encoder, "CACHE_SIZE", 2)
    encoder._cache.clear()
    encoder(["one"]), encoder(["two"]), encoder(["one"]), encoder(["three"])
    assert list(encoder._cache) == ["one", "three"]


def test_frozen_and_not_registered_by_a_module_holding_it(encoder):
    holder = nn.Module()
    holder.text_encoder = encoder
    holder.head = nn.Linear(2, 2)
    assert [name for name, _ in holder.named_parameters()] == ["head.weight", "head.bias"]
    assert list(holder.state_dict()) == ["head.weight", "head.bias"]
    assert not encoder.model.training
    assert not any(p.requires_grad for p in encoder.model.parameters())
    assert not encoder(CAPTIONS).requires_grad


def test_wrong_input_types_are_refused(encoder):
    with pytest.raises(TypeError, match="single string"):
        encoder("a seven")
    with pytest.raises(TypeError, match=r"\['int'\]"):
        encoder(["a seven", 7])


def test_batch_captions_names_the_key_and_binding():
    with pytest.raises(KeyError, match=r"Owner.binding needs batch\['caption'\].*the batch has keys \['video'\]"):
        batch_captions("Owner.binding", {"video": 0}, "caption", 2)
    with pytest.raises(ValueError, match=r"must be a list of 2 strings, one per sample; got list of 1"):
        batch_captions("Owner.binding", {"caption": ["x"]}, "caption", 2)
    assert batch_captions("Owner.binding", {"caption": ("x", "")}, "caption", 2) == ["x", ""]
