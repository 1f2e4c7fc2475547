"""One training step of a recipe on one batch, without writing anything: what `mmmae check`
prints and what `mmmae train` runs before it creates the run directory."""

import contextlib
import inspect
import random
import resource
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import gin
import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, default_collate

from mmmae.config import ConfigError, with_bindings
from mmmae.data.nan_filter import drop_non_finite
from mmmae.masking.rng import MaskRNG
from mmmae.types import BindingProblem

CHECK_BATCH = 2  # samples in the step `mmmae train` runs before it starts (`mmmae check` takes pretrain.batch_size)


@dataclass
class StepReport:
    """What one forward and backward on one batch showed."""

    batch_size: int
    device: str
    loss: float
    step_seconds: float
    tokens: dict[str, tuple[int, int, int]]  # modality -> (visible, predicted, total) per sample
    memory_bytes: int
    memory_source: str  # what memory_bytes measures
    no_gradient: list[str] = field(default_factory=list)  # trainable parameters the loss did not reach


def first_batch(dataset: Dataset, size: int) -> tuple[dict, int]:
    """The dataset's first `size` samples (fewer if it is smaller), collated as training collates
    them, and how many were drawn."""
    if isinstance(dataset, IterableDataset):
        samples = [sample for sample, _ in zip(dataset, range(size))]
    else:
        samples = [dataset[i] for i in range(min(size, len(dataset)))]
    if not samples:
        raise ValueError("the dataset has no samples" if size >= 1 else f"a batch of {size} samples is empty")
    return getattr(dataset, "collate", default_collate)(samples), len(samples)


@contextlib.contextmanager
def no_side_effects(model: torch.nn.Module, device: torch.device) -> Iterator[None]:
    """Leave the model's buffers (running statistics), its gradients and the torch (CPU and
    `device`), numpy and Python random states as they were, so a check before training does
    not change the run."""
    buffers = {name: buffer.detach().clone() for name, buffer in model.named_buffers()}
    numpy_state, python_state = np.random.get_state(), random.getstate()
    devices = [torch.cuda.current_device() if device.index is None else device.index] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        with torch.no_grad():
            for name, buffer in model.named_buffers():
                if name in buffers:
                    buffer.copy_(buffers[name])
        model.zero_grad(set_to_none=True)
        np.random.set_state(numpy_state)
        random.setstate(python_state)


def _peak_memory(device: torch.device) -> tuple[int, str]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device), "torch's CUDA allocator peak: weights, activations, gradients"
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale, "peak resident memory of the whole process"


def _step(model: torch.nn.Module, batch: dict, device: torch.device) -> tuple[torch.Tensor, dict]:
    batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    batch.pop("bad_samples", None)
    batch, _ = drop_non_finite(batch, list(model.modalities))
    missing = [name for name in model.modalities if name not in batch]
    if missing:
        raise KeyError(f"modality {missing[0]!r} is not in the dataset's samples (keys: {sorted(batch)})")
    out = model(batch, MaskRNG.seeded(0, device))
    out.loss.backward()
    return out.loss.detach(), out.outputs


def dry_step(model: torch.nn.Module, dataset: Dataset, batch_size: int, device: str | torch.device = "cpu"
             ) -> StepReport:
    """Draw the first batch, run one forward and backward on `device`, and report; the model
    comes back as it was (on `device`). ConfigError, naming what failed, on any failure."""
    device = torch.device(device)
    try:
        batch, drawn = first_batch(dataset, batch_size)
    except Exception as error:  # noqa: BLE001 - any failure here is the recipe's data, reported in one line
        raise ConfigError(f"cannot draw a first batch from pretrain.dataset: {_reason(error)}") from None
    model.to(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with no_side_effects(model, device):
        tic = time.perf_counter()
        try:
            loss, outputs = _step(model, batch, device)
        except ConfigError:
            raise
        except Exception as error:  # noqa: BLE001 - a mismatch between recipe parts, reported in one line
            reason = with_bindings(error) if isinstance(error, BindingProblem) else _reason(error)
            raise ConfigError(f"one training step on the first batch failed: {reason}") from None
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - tic
        no_gradient = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    if not torch.isfinite(loss):
        raise ConfigError(f"the loss of the first batch is {loss.item()} at initialisation: check the inputs' scale "
                          "and the objectives' weights")
    tokens = {name: (output.plan.keep.shape[1], output.plan.predict.shape[1], output.tokens.num_tokens)
              for name, output in outputs.items()}
    memory, source = _peak_memory(device)
    return StepReport(drawn, str(device), loss.item(), seconds, tokens, memory,
                      source, no_gradient)


def _reason(error: BaseException) -> str:
    """An exception as readable text: a ValueError's or KeyError's own message (with the
    configurable gin adds), any other prefixed by its type."""
    message = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    return message if message and isinstance(error, (ValueError, KeyError)) else f"{type(error).__name__}: {message}"


def parameter_counts(model: torch.nn.Module) -> dict[str, int]:
    """Parameters per top-level part ('encoder', 'video tokenizer', 'video decoder', ...), each
    shared tensor counted once."""
    counts: dict[str, int] = {}
    for name, parameter in model.named_parameters():
        parts = name.split(".")
        part = f"{parts[1]} {parts[2]}" if parts[0] == "modalities" and len(parts) > 2 else parts[0]
        counts[part] = counts.get(part, 0) + parameter.numel()
    return counts


@dataclass
class CheckReport:
    """`mmmae check`'s findings on the parsed recipe."""

    parameters: dict[str, int]  # per top-level part
    trainable: int
    step: StepReport


def _settings() -> dict:
    """pretrain's settings as the parsed recipe binds them (its defaults where it does not)."""
    from mmmae.train import pretrain  # train runs dry_step itself: import it only here

    settings = {}
    for name, parameter in inspect.signature(pretrain).parameters.items():
        if name not in ("output_dir", "resume", "model", "dataset"):
            try:
                settings[name] = gin.query_parameter(f"pretrain.{name}")
            except ValueError:
                settings[name] = parameter.default
    return settings


def _reference(binding: str):
    """What gin's `binding` ('pretrain.model') refers to; ConfigError when the recipe leaves it unbound."""
    try:
        return gin.query_parameter(binding).scoped_configurable_fn
    except ValueError:
        raise ConfigError(f"{binding} is not bound: the recipe must set it (e.g. {binding} = @...)") from None


def check_recipe(device: str | None = None) -> CheckReport:
    """Check the parsed recipe as `pretrain` does before it creates a run directory (its settings,
    building pretrain.model and pretrain.dataset), then run one step on a
    batch of pretrain.batch_size (on CUDA when there is one); writes nothing."""
    from mmmae.build_errors import build_errors
    from mmmae.eval.evaluate import initial_model
    from mmmae.train_settings import check_settings

    settings = _settings()
    check_settings(settings)
    make_model, make_dataset = _reference("pretrain.model"), _reference("pretrain.dataset")
    with build_errors():  # the run's initial model (`initial_model`: every RNG seeded), as `pretrain` builds it
        model, dataset = initial_model(make_model, settings["seed"]), make_dataset()
    batch_size = settings["batch_size"]
    if not isinstance(dataset, IterableDataset) and len(dataset) < batch_size:
        raise ConfigError(f"pretrain.dataset has {len(dataset)} samples, not one full batch of pretrain.batch_size = "
                          f"{batch_size}")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    step = dry_step(model, dataset, batch_size, device)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return CheckReport(parameter_counts(model), trainable, step)


def format_check(report: CheckReport) -> str:
    """The report as `mmmae check` prints it."""
    step = report.step
    width = max(len(part) for part in report.parameters)
    lines = [f"parameters: {sum(report.parameters.values()):,} ({report.trainable:,} trainable)"]
    lines += [f"  {part:<{width}}  {count:>12,}" for part, count in report.parameters.items()]
    lines.append("tokens per sample (visible / predicted / total):")
    width = max(len(name) for name in step.tokens)
    lines += [f"  {name:<{width}}  {visible} / {predicted} / {total}"
              for name, (visible, predicted, total) in step.tokens.items()]
    lines.append(f"step: forward and backward of a batch of {step.batch_size} on {step.device} in "
                 f"{step.step_seconds:.3f} s (the first step: includes one-time setup); loss {step.loss:.4f}")
    lines.append(f"memory: {step.memory_bytes / 2**20:,.1f} MiB ({step.memory_source})")
    if step.no_gradient:
        names = ", ".join(step.no_gradient[:5]) + (", ..." if len(step.no_gradient) > 5 else "")
        lines.append(f"note: {len(step.no_gradient)} trainable parameters got no gradient from the loss ({names}); "
                     "they never train, and a multi-process run fails unless they are frozen or used")
    lines.append("ok: nothing was written")
    return "\n".join(lines)
