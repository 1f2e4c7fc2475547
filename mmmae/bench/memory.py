"""`mmmae bench memory`: what one training step of a recipe holds on each GPU, per strategy, and
the largest batch per GPU that fits each card.

The model state comes from the recipe's real shapes, the model built on the meta device (no
weights allocated): parameters, gradients and AdamW's two fp32 moments of the trainable ones.
DDP keeps all of them on every GPU, and its reducer a second copy of the gradients (its
buckets; torch's default gradient_as_bucket_view=False) when there are several processes.
FSDP (mmmae.sharding: every transformer block a unit, the root the rest; fp32 shards of the
parameters, gradients reduced in fp32) divides them by the process count and adds what it
all-gathers: the root unit, held whole through the step, two blocks at a time (the one running
and the one prefetched), in the compute dtype, and one block's unsharded fp32 gradients before
they are reduce-scattered.

Activations: one forward and backward of the recipe's model under FakeTensorMode (tensors with
shapes and dtypes but no data: a ViT-g step costs no compute and no memory), counted by torch's
MemTracker: the step's peak beyond the model state it starts with (parameters, buffers and the
gradients, allocated beforehand as a running job holds them), the input batch included. The batch
has the shapes of the dataset's first sample, every modality present (the encoder's dense path).
A masker whose index sets depend on values (running-cell masking's nonzero) runs on real zeros
of its inputs' shapes (RealMasker); its plan is counted, its temporaries are not.
bf16 is measured as each strategy runs it: DDP under Accelerate's autocast (fp32 parameters,
autocast's bf16 copies of the weights counted as activations), FSDP with bf16 parameters in
compute and the batch as loaded (mmmae.sharding casts no input). Frozen models a recipe loads
(a VQ tokenizer, a teacher) keep their weights, counted in the step's fixed activations. CPU
autocast and attention stand in for CUDA's: torch's fused CPU attention keeps, as flash attention
does, no N x N scores. The CUDA context and allocator fragmentation are not
counted: leave some headroom.

Activation memory is measured at two batches, fitted as fixed + per_sample * batch, and the fit
checked against a third measurement; a strategy whose prediction misses by more than
CHECK_TOLERANCE gets no largest batch.
"""

import json
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields, replace

import torch
from accelerate import init_empty_weights
from torch import nn
from torch._subclasses.fake_tensor import (
    DataDependentOutputException,
    DynamicOutputShapeException,
    FakeTensorMode,
    unset_fake_temporarily,
)
from torch.distributed._tools.mem_tracker import MemTracker

from mmmae.check import _reference, first_batch
from mmmae.config import ConfigError
from mmmae.masking.rng import MaskRNG
from mmmae.nn.pos_embed import sincos_pos_embed
from mmmae.sharding import DEFAULT_WRAP
from mmmae.types import MaskPlan, Tokens
from mmmae.zoo import pretrained

GIB = 2**30
FIT_BATCHES = (2, 4)  # the activation fit's two batches
CHECK_BATCH = 16  # where the fit is checked against a measurement
CHECK_TOLERANCE = 0.10
WRAP_UNITS = tuple(DEFAULT_WRAP.split(","))  # FSDP's wrap unit classes
ADAM_MOMENTS = 2  # exp_avg and exp_avg_sq, fp32
FP32, BF16 = 4, 2  # bytes per element
REGISTER_PARAMETER = nn.Module.register_parameter  # torch's own, which init_empty_weights replaces while in force


@contextmanager
def empty_weights() -> Iterator[None]:
    """accelerate's init_empty_weights for the model measured, except the frozen models it loads
    (zoo.pretrained.frozen_model: a VQ tokenizer, a teacher), built with their weights: they compute
    inputs and targets from values, and are held outside the model's parameters (not counted)."""
    build = pretrained.build_model

    def build_with_weights(*args, **kwargs):
        empty, nn.Module.register_parameter = nn.Module.register_parameter, REGISTER_PARAMETER
        try:
            return build(*args, **kwargs)
        finally:
            nn.Module.register_parameter = empty

    with init_empty_weights():
        pretrained.build_model = build_with_weights
        try:
            yield
        finally:
            pretrained.build_model = build


@dataclass(frozen=True)
class ModelShape:
    """Element counts of the model: all parameters, the trainable ones, the largest FSDP unit
    (a transformer block) and the root unit (every parameter outside the blocks)."""

    parameters: int
    trainable: int
    largest_unit: int
    root: int


@dataclass(frozen=True)
class ActivationFit:
    """Activation bytes measured at FIT_BATCHES and CHECK_BATCH; the line through the first two."""

    batches: tuple[int, int, int]
    measured: tuple[int, int, int]

    @property
    def per_sample(self) -> float:
        (b1, b2, _), (m1, m2, _) = self.batches, self.measured
        return (m2 - m1) / (b2 - b1)

    @property
    def fixed(self) -> float:
        return self.measured[0] - self.per_sample * self.batches[0]

    def predict(self, batch: int) -> float:
        return self.fixed + self.per_sample * batch

    @property
    def error(self) -> float:
        """|predicted - measured| / measured at the check batch."""
        return abs(self.predict(self.batches[2]) - self.measured[2]) / self.measured[2]

    @property
    def holds(self) -> bool:
        """The activations grow with the batch and the line meets the check measurement."""
        return self.per_sample > 0 and self.error <= CHECK_TOLERANCE


@dataclass
class StrategyPlan:
    """One strategy's bytes per GPU and the largest batch per GPU that fits each card (None: the
    activation fit failed its check)."""

    strategy: str  # 'DDP' | 'FSDP'
    precision: str  # 'fp32' | 'bf16'
    checkpointing: bool
    parameters: int
    gradients: int
    optimizer: int
    gathered: int
    activations: ActivationFit
    largest_batch: dict[str, int | None]

    @property
    def state(self) -> int:
        """Everything but the activations."""
        return self.parameters + self.gradients + self.optimizer + self.gathered

    def total(self, batch: int) -> float:
        """Planned bytes per GPU at `batch` samples per GPU."""
        return self.state + self.activations.predict(batch)


@dataclass
class MemoryPlan:
    """A recipe's plan: its model's counts and every strategy's bytes and largest batches."""

    recipe: str
    processes: int
    gpu_gb: list[float]
    shape: ModelShape
    strategies: list[StrategyPlan]


def parse_gpu_gb(text: str) -> list[float]:
    """'24,40,80' -> [24.0, 40.0, 80.0] (GiB per card); ConfigError naming the bad value."""
    try:
        sizes = [float(part) for part in text.split(",")]
    except ValueError:
        raise ConfigError(f"--gpu_gb {text!r}: give card sizes in GiB, comma-separated, e.g. 24,40,80") from None
    if not sizes or not all(math.isfinite(size) and size > 0 for size in sizes):
        raise ConfigError(f"--gpu_gb {text!r}: every card size must be a positive number of GiB, e.g. 24,40,80")
    return sizes


def model_shape(model: nn.Module) -> ModelShape:
    """Element counts of `model` (on any device, meta included), each shared tensor once."""
    units = [m for m in model.modules() if type(m).__name__ in WRAP_UNITS]
    in_units = {id(p) for unit in units for p in unit.parameters()}
    parameters = list(model.parameters())
    return ModelShape(parameters=sum(p.numel() for p in parameters),
                      trainable=sum(p.numel() for p in parameters if p.requires_grad),
                      largest_unit=max((sum(p.numel() for p in unit.parameters()) for unit in units), default=0),
                      root=sum(p.numel() for p in parameters if id(p) not in in_units))


def state_bytes(shape: ModelShape, strategy: str, precision: str, processes: int) -> dict[str, int]:
    """Parameter, gradient, optimizer and all-gathered bytes per GPU (see the module docstring)."""
    if strategy == "DDP":
        buckets = 2 if processes > 1 else 1
        return {"parameters": FP32 * shape.parameters, "gradients": buckets * FP32 * shape.trainable,
                "optimizer": ADAM_MOMENTS * FP32 * shape.trainable, "gathered": 0}
    compute = BF16 if precision == "bf16" else FP32
    return {"parameters": math.ceil(FP32 * shape.parameters / processes),
            "gradients": math.ceil(FP32 * shape.trainable / processes),
            "optimizer": math.ceil(ADAM_MOMENTS * FP32 * shape.trainable / processes),
            "gathered": compute * (shape.root + 2 * shape.largest_unit) + FP32 * shape.largest_unit}


def largest_batch(plan: StrategyPlan, gib: float) -> int | None:
    """The most samples per GPU whose planned bytes fit `gib` GiB (0: not even one); None when
    the activation fit failed its check."""
    if not plan.activations.holds:
        return None
    room = gib * GIB - plan.state - plan.activations.fixed
    return max(0, math.floor(room / plan.activations.per_sample))


def sample_shapes(sample: dict) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """The tensors of a one-sample batch -> their shapes without the batch axis and dtypes; the
    `<modality>_present` flags are left out (every modality present)."""
    return {k: (tuple(v.shape[1:]), v.dtype) for k, v in sample.items()
            if isinstance(v, torch.Tensor) and not k.endswith("_present")}


def _zeros(value):
    """A tensor -> zeros of its shape and dtype (real or fake, as the mode in force makes them);
    the tensors of Tokens, MaskPlans and dicts likewise; anything else as it is."""
    if isinstance(value, torch.Tensor):
        return torch.zeros(value.shape, dtype=value.dtype)
    if isinstance(value, (Tokens, MaskPlan)):
        return replace(value, **{f.name: _zeros(getattr(value, f.name)) for f in fields(value)})
    if isinstance(value, dict):
        return {k: _zeros(v) for k, v in value.items()}
    return value


class RealMasker(nn.Module):
    """A masker whose index sets depend on values (nonzero) run on real zeros of its inputs' shapes;
    its plan comes back as tensors of the fake mode in force (counted)."""

    def __init__(self, masker: Callable):
        super().__init__()
        self.masker = masker

    def forward(self, tokens: Tokens, batch: dict, rng: MaskRNG) -> MaskPlan:
        with unset_fake_temporarily():
            plan = self.masker(_zeros(tokens), _zeros(batch), rng)
        return _zeros(plan)


@contextmanager
def frozen_models_hookable() -> Iterator[None]:
    """The frozen models loaded (zoo.pretrained.frozen_model: a VQ tokenizer, a teacher) with
    requires_grad while in force: MemTracker hooks the gradient of every parameter of a module that
    runs under it, which a parameter without requires_grad refuses. They run under no_grad (no gradient
    is made) and their weights, which stay on the GPU, count in the step's peak."""
    frozen = [p for model in list(pretrained._FROZEN.values()) for p in model.parameters() if not p.requires_grad]
    for p in frozen:
        p.requires_grad_(True)
    try:
        yield
    finally:
        for p in frozen:
            p.requires_grad_(False)


def step_activations(make_model: Callable[[], nn.Module], shapes: dict, batch: int, mode: str,
                     checkpointing: bool, real_maskers: bool = False) -> int:
    """Peak bytes beyond the model state of one forward and backward of `make_model()` on a batch
    of `batch` samples of `shapes`, under FakeTensorMode. mode: 'fp32'; 'autocast' (bf16 autocast,
    fp32 parameters: DDP's bf16); 'bf16' (bf16 parameters, the inputs as loaded: FSDP's). real_maskers: run
    the maskers without parameters as RealMasker (their temporaries not counted, their plans are)."""
    with empty_weights():
        model = make_model()
    sincos_pos_embed.cache_clear()  # the step builds its tables (counted); a fake one must not outlive it
    try:
        return _fake_step(model, shapes, batch, mode, checkpointing, real_maskers)
    finally:
        sincos_pos_embed.cache_clear()


def _fake_step(model: nn.Module, shapes: dict, batch: int, mode: str, checkpointing: bool, real_maskers: bool) -> int:
    """step_activations on a model built on the meta device."""
    if real_maskers:
        for modality in getattr(model, "modalities", {}).values():
            if not (isinstance(modality.masker, nn.Module) and list(modality.masker.parameters())):
                modality.masker = RealMasker(modality.masker)
    if mode == "bf16":
        model.to(torch.bfloat16)  # on the meta device, before the tensors turn fake
    with FakeTensorMode(allow_non_fake_inputs=True):
        model.to_empty(device="cpu")
        for module in model.modules():
            if hasattr(module, "checkpointing"):
                module.checkpointing = checkpointing
        model.train()
        for p in model.parameters():
            if p.requires_grad:
                p.grad = torch.zeros_like(p)
        tracker = MemTracker()
        tracker.track_external(model)
        start = tracker.get_tracker_snapshot("current")
        with tracker, frozen_models_hookable():
            data = {k: torch.zeros((batch, *shape), dtype=dtype) for k, (shape, dtype) in shapes.items()}
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "autocast"):
                loss = model(data, MaskRNG.seeded(0, torch.device("cpu"))).loss
            loss.backward()
        peak = tracker.get_tracker_snapshot("peak")
    return sum(snap["Total"] for snap in peak.values()) - sum(snap["Total"] for snap in start.values())


def fit_activations(make_model: Callable[[], nn.Module], shapes: dict, mode: str, checkpointing: bool,
                    batches: Sequence[int] = (*FIT_BATCHES, CHECK_BATCH)) -> ActivationFit:
    """Activations measured at the fit's two batches and at its check batch; the maskers run for
    real (RealMasker) when their index sets depend on values."""
    real_maskers = False
    try:
        first = step_activations(make_model, shapes, batches[0], mode, checkpointing)
    except (DynamicOutputShapeException, DataDependentOutputException):
        real_maskers = True
        first = step_activations(make_model, shapes, batches[0], mode, checkpointing, real_maskers)
    rest = (step_activations(make_model, shapes, b, mode, checkpointing, real_maskers) for b in batches[1:])
    return ActivationFit(tuple(batches), (first, *rest))


def plan_memory(recipe: str, gpu_gb: Sequence[float], processes: int) -> MemoryPlan:
    """The parsed recipe's plan: DDP and FSDP, fp32 and bf16, without and with activation
    checkpointing, for `processes` GPUs; ConfigError when the step cannot run on shapes alone."""
    from mmmae.build_errors import build_errors

    make_model, make_dataset = _reference("pretrain.model"), _reference("pretrain.dataset")
    with build_errors():
        with empty_weights():
            shape = model_shape(make_model())
        sample, _ = first_batch(make_dataset(), 1)
    shapes = sample_shapes(sample)
    strategies = []
    for checkpointing in (False, True):
        fits = {}
        for strategy, precision in (("DDP", "fp32"), ("FSDP", "fp32"), ("DDP", "bf16"), ("FSDP", "bf16")):
            mode = precision if strategy == "FSDP" or precision == "fp32" else "autocast"
            if mode not in fits:
                try:
                    fits[mode] = fit_activations(make_model, shapes, mode, checkpointing)
                except (RuntimeError, NotImplementedError) as error:  # an op that needs the data's values
                    raise ConfigError(f"{recipe}: the step cannot be measured on shapes alone (FakeTensorMode): "
                                      f"{type(error).__name__}: {str(error).splitlines()[0]}") from None
            state = state_bytes(shape, strategy, precision, processes)
            plan = StrategyPlan(strategy, precision, checkpointing, **state, activations=fits[mode], largest_batch={})
            plan.largest_batch = {f"{gib:g}": largest_batch(plan, gib) for gib in gpu_gb}
            strategies.append(plan)
    return MemoryPlan(recipe, processes, list(gpu_gb), shape, strategies)


def _gib(value: float) -> str:
    return f"{value / GIB:.2f}"


def format_memory_plan(plan: MemoryPlan) -> str:
    """The plan as `mmmae bench memory` prints it: GiB per GPU."""
    shape = plan.shape
    b1, b2, check = plan.strategies[0].activations.batches
    lines = [f"memory per GPU for {plan.recipe}: {shape.parameters / 1e6:.1f} M parameters "
             f"({shape.trainable / 1e6:.1f} M trainable; largest FSDP unit {shape.largest_unit / 1e6:.1f} M, root "
             f"{shape.root / 1e6:.1f} M), {plan.processes} processes; GiB",
             f"activations: torch's MemTracker under FakeTensorMode at batch {b1} and {b2}, extrapolated linearly, "
             f"checked at batch {check} (predicted / measured)"]
    header = ["strategy", "precision", "ckpt", "params", "grads", "optim", "gathered", "act fixed", "act/sample",
              f"check @{check}"] + [f"{gib:g} GiB" for gib in plan.gpu_gb]
    rows = []
    for s in plan.strategies:
        fit = s.activations
        checked = f"{_gib(fit.predict(check))} / {_gib(fit.measured[2])} ({100 * fit.error:.1f} %)"
        if not fit.holds:
            checked += " OFF"
        fits = ["-" if b is None else str(b) for b in s.largest_batch.values()]
        rows.append([s.strategy, s.precision, "yes" if s.checkpointing else "no", _gib(s.parameters),
                     _gib(s.gradients), _gib(s.optimizer), _gib(s.gathered), _gib(fit.fixed), _gib(fit.per_sample),
                     checked] + fits)
    widths = [max(len(str(row[i])) for row in [header] + rows) for i in range(len(header))]
    lines += ["  ".join(f"{cell:<{w}}" for cell, w in zip(row, widths)).rstrip() for row in [header] + rows]
    lines.append("the last columns: the largest batch per GPU that fits (0: not one sample; -: the fit missed its "
                 f"check by more than {CHECK_TOLERANCE:.0%}); no headroom for the CUDA context or fragmentation")
    return "\n".join(lines)


def memory_plan_json(plan: MemoryPlan) -> str:
    """The plan for machines: bytes, with each strategy's activation fit."""
    data = asdict(plan)
    for record, strategy in zip(data["strategies"], plan.strategies):
        fit = strategy.activations
        record["activations"] |= {"fixed": fit.fixed, "per_sample": fit.per_sample, "error": fit.error,
                                  "holds": fit.holds}
        record["state"] = strategy.state
    return json.dumps(data, indent=2)
