"""Text: captions -> token ids (a Hugging Face tokenizer) -> embeddings with 1-D sin-cos positions.

The default tokenizer is byte-level ByT5 (vocabulary 384, pad id 0): it needs no files and
works offline. Any other tokenizer is loaded from a local directory, never downloaded.
"""

import functools
from collections.abc import Sequence
from pathlib import Path

import gin
import torch
from torch import nn
from transformers import AutoTokenizer, ByT5Tokenizer, PreTrainedTokenizerBase

from mmmae.nn.pos_embed import sincos_pos_embed
from mmmae.types import Tokens


@gin.configurable(module="mmmae")
def load_text_tokenizer(path: str | None = None) -> PreTrainedTokenizerBase:
    """None -> ByT5's byte tokenizer; a directory -> AutoTokenizer from its files (local only). Cached per path."""
    return _load(None if path is None else str(path))


@functools.cache
def _load(path: str | None) -> PreTrainedTokenizerBase:
    if path is None:
        return ByT5Tokenizer()
    if not Path(path).is_dir():
        raise ValueError(f"text tokenizer path {path!r} is not a directory (expected a saved tokenizer)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as error:
        raise ValueError(f"could not load a text tokenizer from {path!r}: {error}") from error
    if tokenizer.pad_token_id is None:
        raise ValueError(f"the text tokenizer in {path!r} has no pad token")
    return tokenizer


def encode_captions(captions: Sequence[str], tokenizer: PreTrainedTokenizerBase, length: int) -> torch.Tensor:
    """Captions -> ids (B, length) int64, padded with the pad id and truncated (EOS kept as the tokenizer does)."""
    if isinstance(captions, str):
        raise TypeError("encode_captions takes a sequence of captions, got a single string")
    if length < 1:
        raise ValueError(f"encode_captions: length must be positive, got {length}")
    encoded = tokenizer(list(captions), padding="max_length", truncation=True, max_length=length, return_tensors="pt")
    return encoded["input_ids"].long()


@gin.configurable(module="mmmae")
class TextTokenizer(nn.Module):
    """Token ids (B, L) int64 -> Tokens(embed (B, L, dim), target = ids, grid (L,), valid = ids != pad id).

    A learned embedding per id plus a fixed 1-D sin-cos table; `target_dim` is the vocabulary size.
    """

    def __init__(self, dim: int = gin.REQUIRED, tokenizer_path: str | None = None):
        super().__init__()
        tokenizer = load_text_tokenizer(tokenizer_path)
        self.tokenizer_path = tokenizer_path
        self.dim = dim
        self.target_dim = len(tokenizer)
        self.pad_id = tokenizer.pad_token_id
        self.embed = nn.Embedding(self.target_dim, dim)

    def figure_tokens(self, ids: torch.Tensor) -> list[str]:
        """Ids (L,) -> the text of each token as the tokenizer writes it (ByT5: one character, or a
        special token such as '</s>')."""
        return load_text_tokenizer(self.tokenizer_path).convert_ids_to_tokens(ids.tolist())

    def forward(self, ids: torch.Tensor) -> Tokens:
        if ids.ndim != 2 or ids.dtype != torch.int64:
            raise ValueError(
                f"TextTokenizer expects token ids (B, L) int64, got {tuple(ids.shape)} {ids.dtype}"
            )
        grid = (ids.shape[1],)
        embed = self.embed(ids)
        embed = embed + sincos_pos_embed(grid, self.dim, "joint", embed.device).to(embed.dtype)
        return Tokens(embed=embed, target=ids, grid=grid, valid=ids != self.pad_id)
