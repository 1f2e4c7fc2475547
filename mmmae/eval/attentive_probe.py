"""Attentive probe: a learned query cross-attends to a frozen encoder's tokens, then a linear head
(one attention-pooling block, as V-JEPA's and VideoMAE V2's attentive probes)."""

import gin
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from mmmae.eval.encoded import encoded_batches
from mmmae.eval.frozen import check_modality
from mmmae.eval.interval import wilson_interval
from mmmae.eval.loader import EvalLoader, no_samples_error
from mmmae.nn.mlp import Mlp
from mmmae.optim import build_optimizer


class AttentivePooler(nn.Module):
    """`queries` learned queries attend to the tokens: (B, N, D), valid (B, N) or None -> (B, D).

    q <- q + attention(q, norm(x)); q <- q + mlp(norm(q)); the queries' mean is the result.
    Padding (valid False) is never attended to.
    """

    def __init__(self, dim: int, heads: int, queries: int = 1, mlp_ratio: float = 4.0):
        super().__init__()
        self.query = nn.Parameter(nn.init.trunc_normal_(torch.empty(1, queries, dim), std=0.02))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.mlp_norm = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        q = self.query.expand(x.shape[0], -1, -1)
        x = self.norm(x)
        q = q + self.attn(q, x, x, key_padding_mask=None if valid is None else ~valid, need_weights=False)[0]
        q = q + self.mlp(self.mlp_norm(q))
        return q.mean(dim=1)


class AttentiveClassifier(nn.Module):
    """AttentivePooler then a linear head: tokens (B, N, D), valid -> logits (B, num_classes)."""

    def __init__(self, dim: int, heads: int, num_classes: int, queries: int = 1):
        super().__init__()
        self.pool = AttentivePooler(dim, heads, queries)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.pool(x, valid))


def encoded_tokens(model, dataset: Dataset, modality: str, label: str,
                   batch_size: int) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, int, int]:
    """Every token of the readable samples that have `modality`, in dataset order, each once:
    (n, N, D), valid (n, N) or None, labels (n,); how many samples lacked the modality, and how
    many were unreadable. Batches with fewer tokens are padded (valid False) up to the longest."""
    tokens, valid, labels, absent = [], [], [], 0
    loader = EvalLoader(dataset, batch_size)
    for encoded in encoded_batches(model, loader, modality, pooled=False):
        absent += int((~encoded.present).sum())
        if encoded.features is None:
            continue
        tokens.append(encoded.features)
        valid.append(torch.ones(encoded.features.shape[:2], dtype=torch.bool) if encoded.valid is None
                     else encoded.valid)
        labels.append(encoded.batch[label][encoded.present])
    if not tokens:
        return torch.zeros(0, 0, 0), None, torch.zeros(0, dtype=torch.int64), absent, loader.left_out
    length = max(t.shape[1] for t in tokens)
    tokens = torch.cat([F.pad(t, (0, 0, 0, length - t.shape[1])) for t in tokens])
    valid = torch.cat([F.pad(v, (0, length - v.shape[1])) for v in valid])
    return tokens, (None if valid.all() else valid), torch.cat(labels).long(), absent, loader.left_out


@gin.configurable(module="mmmae")
class AttentiveProbe:
    """Train an attentive probe on a frozen encoder's tokens of `train_data`; report accuracy on
    `train_data` and `test_data` (fractions in [0, 1]).

    Tokens: the `modality` encoded alone and unmasked, computed once and kept on the CPU (n x N x D
    floats per split). The probe (AttentiveClassifier with `heads` heads and `queries` queries)
    trains `epochs` epochs with AdamW (`lr`, `weight_decay`), `warmup_epochs` of linear warmup
    then a cosine to 0, on shuffled batches of `batch_size`, seeded by `seed`. Classes: 0 .. the
    largest train label. Samples that lack the modality, and unreadable ones, are left out and counted.
    Result: {"modality", "label", "train_accuracy", "test_accuracy", "test_accuracy_ci" ([low, high],
    Wilson 95 %), "train_samples",
    "test_samples", "train_absent", "test_absent", "train_left_out", "test_left_out" (unreadable),
    "epochs", "final_loss"}.
    """

    kind = "attentive_probe"

    def __init__(self, train_data: Dataset = gin.REQUIRED, test_data: Dataset = gin.REQUIRED,
                 modality: str = "video", label: str = "label", heads: int = 4, queries: int = 1, epochs: int = 20,
                 batch_size: int = 64, lr: float = 1e-3, weight_decay: float = 0.01, warmup_epochs: int = 0,
                 seed: int = 0):
        if epochs < 1 or batch_size < 1 or queries < 1 or heads < 1:
            raise ValueError(f"AttentiveProbe: epochs = {epochs}, batch_size = {batch_size}, queries = {queries}, "
                             f"heads = {heads}: each must be >= 1")
        self.train_data, self.test_data = train_data, test_data
        self.modality, self.label = modality, label
        self.heads, self.queries, self.epochs, self.batch_size = heads, queries, epochs, batch_size
        self.lr, self.weight_decay, self.warmup_epochs, self.seed = lr, weight_decay, warmup_epochs, seed

    def __call__(self, model) -> dict:
        check_modality(model, self.modality, "AttentiveProbe")
        splits = {}
        for split, data in (("train_data", self.train_data), ("test_data", self.test_data)):
            splits[split] = encoded_tokens(model, data, self.modality, self.label, self.batch_size)
            if len(splits[split][0]) == 0:
                raise no_samples_error(f"AttentiveProbe.{split}", self.modality, *splits[split][3:])
        (train_x, train_valid, train_y, train_absent, train_left_out), \
            (test_x, test_valid, test_y, test_absent, test_left_out) = splits.values()
        dim = train_x.shape[-1]
        if dim % self.heads:
            raise ValueError(f"AttentiveProbe.heads = {self.heads} does not divide the encoder width {dim}")
        device = next(model.parameters()).device
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            probe = AttentiveClassifier(dim, self.heads, int(train_y.max()) + 1, self.queries).to(device)
            final_loss = self._train(probe, train_x, train_valid, train_y, device)
        test_accuracy = accuracy(probe, test_x, test_valid, test_y, self.batch_size, device)
        return {"modality": self.modality, "label": self.label,
                "train_accuracy": accuracy(probe, train_x, train_valid, train_y, self.batch_size, device),
                "test_accuracy": test_accuracy, "test_accuracy_ci": wilson_interval(test_accuracy, len(test_x)),
                "train_samples": len(train_x), "test_samples": len(test_x),
                "train_absent": train_absent, "test_absent": test_absent,
                "train_left_out": train_left_out, "test_left_out": test_left_out,
                "epochs": self.epochs, "final_loss": final_loss}

    def _train(self, probe: AttentiveClassifier, x: torch.Tensor, valid: torch.Tensor | None, y: torch.Tensor,
               device: torch.device) -> float:
        """Train in place (the global RNG seeded); returns the last epoch's mean loss."""
        per_epoch = -(-len(x) // self.batch_size)
        optimizer, schedule = build_optimizer(probe, self.lr, self.weight_decay, (0.9, 0.999), self.epochs * per_epoch,
                                              self.warmup_epochs * per_epoch, 0.0)
        probe.train()
        for _ in range(self.epochs):
            total = 0.0
            for rows in torch.randperm(len(x)).split(self.batch_size):
                rows_valid = None if valid is None else valid[rows].to(device)
                loss = F.cross_entropy(probe(x[rows].to(device), rows_valid), y[rows].to(device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                total += loss.item() * len(rows)
        probe.eval()
        return total / len(x)


@torch.no_grad()
def accuracy(probe: nn.Module, x: torch.Tensor, valid: torch.Tensor | None, y: torch.Tensor, batch_size: int,
             device: torch.device) -> float:
    """Share of rows of tokens x (n, N, D) whose arg-max logit is their label y (n,)."""
    correct = 0
    for rows in torch.arange(len(x)).split(batch_size):
        logits = probe(x[rows].to(device), None if valid is None else valid[rows].to(device))
        correct += int((logits.argmax(dim=-1).cpu() == y[rows]).sum())
    return correct / len(x)
