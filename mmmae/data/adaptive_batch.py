"""Adaptive batch size (Diffusion-MAViL): a per-step batch that holds a step's cost flat while a
masking curriculum changes how many tokens the encoder sees and the decoder predicts.

The cost model: one sample costs
    c(s) = encoder_cost * K(s) + decoder_cost * Q(s) + sample_cost
at micro-step s, where K(s) and Q(s) are the visible and predicted tokens of one sample summed
over the modalities, as the model's own maskers draw them in training at s, and sample_cost is what a
sample costs whatever its mask (its inputs, all its tokens' embeddings and targets). With costs in
bytes of activation memory, a step's peak memory is B(s) * c(s) plus what does not depend on the
batch (weights, gradients, optimizer state), so B(s) = round(B(0) * c(0) / c(s)), at least 1, holds
it at step 0's (costs in FLOPs per token would hold the compute instead).
The learning rate follows B(0) (`pretrain.batch_size`) for the whole run: lr = base_lr * B(0) *
processes * grad_accum / 256, as without an adaptive batch; a step's loss is a mean over its
samples, so a larger batch lowers the gradient's noise, not its size.
"""

import math
from collections.abc import Iterator, Sequence

import gin
import numpy as np
import torch
from accelerate.utils import send_to_device
from torch.utils.data import IterableDataset, Sampler

from mmmae.check import first_batch, no_side_effects
from mmmae.masking.rng import MaskRNG

TokenCounts = dict[str, tuple[int, int, int]]  # modality -> (visible K, predicted Q, total N) per sample


def model_token_counts(model: torch.nn.Module, dataset, steps: int, grad_accum: int, seed: int
                       ) -> list[TokenCounts]:
    """Per micro-step 0..steps * grad_accum - 1: each modality's (K, Q, N) for the dataset's first
    sample (collated as training collates it, tokenized once without target), masked by the model's
    maskers with the trainer's own mask seed of that micro-step (mmmae.train.mask_seed(seed, micro),
    optimizer step micro // grad_accum): a masker whose count is random (MaskGITMasking) counts what
    training draws. A plan's count is the same on every process (MaskRNG), so every process plans the
    same sizes. The model's buffers and gradients and the torch, numpy and Python RNGs are left as
    they were (mmmae.check.no_side_effects)."""
    from mmmae.train import mask_seed  # the trainer imports this module

    device = next(model.parameters()).device
    with no_side_effects(model, device), torch.no_grad():
        sample = send_to_device(first_batch(dataset, 1)[0], device)
        tokens = {m: modality.tokenize(sample[m], with_target=False) for m, modality in model.modalities.items()}
        counts = []
        for micro in range(steps * grad_accum):
            rng = MaskRNG.seeded(mask_seed(seed, micro), device, step=micro // grad_accum)
            plans = {m: modality.mask(tokens[m], sample, rng) for m, modality in model.modalities.items()}
            counts.append({m: (plans[m].keep.shape[1], plans[m].predict.shape[1], tokens[m].num_tokens)
                           for m in tokens})
    return counts


@gin.configurable(module="mmmae")
class AdaptiveBatch:
    """The batch size per step that holds c(s) * B(s) at c(0) * B(0) (module docstring); gin
    `pretrain.adaptive_batch = @AdaptiveBatch`. encoder_cost, decoder_cost, sample_cost: what
    one visible token, one predicted token and one sample whatever its mask cost, in one unit
    (tools/generative/mavil_memory.py --fit measures them in KiB of activation memory). The
    defaults (1, 0, 0) make the batch follow the visible-token count alone: B(0) (1 - ρ0) / (1 - ρ)."""

    def __init__(self, encoder_cost: float = 1.0, decoder_cost: float = 0.0, sample_cost: float = 0.0):
        costs = {"encoder_cost": encoder_cost, "decoder_cost": decoder_cost, "sample_cost": sample_cost}
        for name, value in costs.items():
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"AdaptiveBatch.{name} = {value!r}: must be a number of at least 0")
        if encoder_cost + decoder_cost + sample_cost == 0:
            raise ValueError("AdaptiveBatch: encoder_cost, decoder_cost and sample_cost are all 0; give one a cost")
        self.encoder_cost, self.decoder_cost, self.sample_cost = encoder_cost, decoder_cost, sample_cost

    def cost(self, counts: TokenCounts) -> float:
        """c: the cost of one sample with these token counts."""
        tokens = sum(self.encoder_cost * k + self.decoder_cost * q for k, q, _ in counts.values())
        return tokens + self.sample_cost

    def batch_sizes(self, counts: Sequence[TokenCounts], batch_size: int) -> list[int]:
        """B(s) per (micro-)step, B(0) = batch_size: round(batch_size * c(0) / c(s)), at least 1."""
        reference = self.cost(counts[0])
        if reference == 0:
            raise ValueError(f"one sample costs 0 at step 0 (token counts {counts[0]}); give a cost to a token "
                             "count that is not 0 (AdaptiveBatch.encoder_cost, .decoder_cost, .sample_cost)")
        return [max(1, round(batch_size * reference / self.cost(c))) for c in counts]

    def sampler(self, model: torch.nn.Module, dataset, batch_size: int, steps: int, grad_accum: int,
                processes: int, seed: int) -> "StepBatchSampler":
        """The run's batch sampler: B(micro-step) samples on each process, from the counts of the masks
        training draws at each micro-step (model_token_counts)."""
        if isinstance(dataset, IterableDataset):
            raise ValueError(f"{type(dataset).__name__} is a stream; an adaptive batch draws its samples by index "
                             "from a dataset with a length (MovingDigits, MediaDataset)")
        sizes = self.batch_sizes(model_token_counts(model, dataset, steps, grad_accum, seed), batch_size)
        return StepBatchSampler(sizes, len(dataset), processes, seed)


def permutation(num_samples: int, seed: int, epoch: int) -> np.ndarray:
    """The sample order of one pass over the data: seeded by (seed, epoch) alone."""
    return np.random.default_rng([seed, epoch]).permutation(num_samples)


class StepBatchSampler(Sampler[list[int]]):
    """Batches defined per micro-step over a stream of seeded permutations of the dataset: micro-step
    i takes the next sizes[i] * processes indices of the stream, split into `processes` consecutive
    batches of sizes[i] (Accelerate's BatchSamplerShard gives process r the r-th). A micro-step's
    global batch never straddles two permutations (the rest of one too short for it is skipped, as
    drop_last does), so its samples are distinct. len = micro-steps * processes: a run is one
    "epoch" of the loader, and skipping the first k batches resumes exactly at micro-step k."""

    drop_last = True  # every micro-step has a batch on every process

    def __init__(self, sizes: Sequence[int], num_samples: int, processes: int, seed: int):
        if max(sizes) * processes > num_samples:
            step = int(np.argmax(sizes))
            raise ValueError(f"micro-step {step} needs {sizes[step]} samples on each of {processes} process(es), "
                             f"more than the dataset's {num_samples}; lower pretrain.batch_size or add samples")
        self.sizes, self.num_samples, self.processes, self.seed = list(sizes), num_samples, processes, seed

    def __len__(self) -> int:
        return len(self.sizes) * self.processes

    def __iter__(self) -> Iterator[list[int]]:
        epoch, order, position = 0, permutation(self.num_samples, self.seed, 0), 0
        for size in self.sizes:
            need = size * self.processes
            if position + need > self.num_samples:
                epoch, position = epoch + 1, 0
                order = permutation(self.num_samples, self.seed, epoch)
            for rank in range(self.processes):
                yield order[position + rank * size: position + (rank + 1) * size].tolist()
            position += need

