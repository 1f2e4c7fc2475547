"""The pretraining loop on Accelerate: one function, configured by gin (`pretrain.*`)."""

import copy
import json
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import gin
import numpy as np
import torch
from accelerate import Accelerator, DataLoaderConfiguration
from safetensors.torch import save_file, save_model
from torch.utils.data import DataLoader, Dataset, IterableDataset
from tqdm.auto import tqdm

from mmmae.build_errors import build_errors
from mmmae.check import CHECK_BATCH, dry_step
from mmmae.checkpoint import MODEL_FILE, checkpoint_step, latest_checkpoint, load_checkpoint, save_checkpoint
from mmmae.config import OPERATIVE_CONFIG, ConfigError, binding_error, config_difference
from mmmae.data.adaptive_batch import AdaptiveBatch
from mmmae.data.data_wait import DataWait
from mmmae.data.nan_filter import drop_non_finite
from mmmae.data.rank_split import own_part, prepare_stream_loader
from mmmae.eval.evaluate import evaluations, initial_model, run_evaluations
from mmmae.eval.label_check import check_labels
from mmmae.init_from import InitReport, load_matching_weights
from mmmae.masking.rng import MaskRNG
from mmmae.model import MaskedAutoencoder
from mmmae.optim import build_optimizer, scaled_lr
from mmmae.sharded_checkpoint import is_sharded
from mmmae.sharding import fsdp_plugin, gathered_weights, shard_on_cpu, trained_copy
from mmmae.stop_signals import SignalWatch, StopRequested, WorkerSignals
from mmmae.train_settings import LoopSettings, check_settings
from mmmae.types import ModelOutput
from mmmae.viz_figure import save_figure
from mmmae.viz_reconstruction import reconstruction_figure

logger = logging.getLogger(__name__)


class RunDirError(RuntimeError):
    """The output directory cannot be used for this invocation."""


def mask_seed(seed: int, micro_step: int) -> int:
    """The masking seed of one micro-step: the same on every process, distinct per step."""
    return int(np.random.SeedSequence([seed, micro_step]).generate_state(1)[0])


def module_seed(seed: int, micro_step: int, process: int) -> int:
    """The seed of torch's global generator for one micro-step on one process, set before the step:
    dropout, drop path, a diffusion decoder's noise, a VAE's sample draw the same numbers whether
    or not the run was resumed (a resumed loader draws from the generator when its iterator starts,
    so a generator carried across steps would not); distinct per step and per process."""
    return int(np.random.SeedSequence([seed, micro_step, process, 1]).generate_state(1)[0])


def check_launch(accelerator: Accelerator) -> None:
    """ConfigError when the launcher started more processes (WORLD_SIZE) than joined Accelerate's
    group: each would run alone, into the same folder (torchrun on a CPU machine without
    ACCELERATE_USE_CPU=1 does this)."""
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched != accelerator.num_processes:
        raise ConfigError(f"the launcher started {launched} processes (WORLD_SIZE), but they did not form one group "
                          f"(Accelerate sees {accelerator.num_processes}): each would run alone. On a machine "
                          "without GPUs set ACCELERATE_USE_CPU=1 for `accelerate launch` (README, \"Several "
                          "processes\"); otherwise check the launch config's distributed_type")


def refuse_existing_run(run_dir: Path, resume: bool) -> None:
    """RunDirError, before anything is built, if run_dir holds a run and this is not --resume."""
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is not None and not resume:
        raise RunDirError(f"{run_dir} already holds a run (latest checkpoint {checkpoint.name}); "
                          "pass --resume to continue it or choose another --output_dir")


# Bindings a resumed run may change: its length (extending it) and where its weights first came from
# (the checkpoint holds them now).
RESUMABLE_LINES = re.compile(r"^pretrain\.(steps = \d+|init_from = (\\\n\s*)?.*)$", re.MULTILINE)


BINDING_START = re.compile(r"^(?P<name>[\w./]+) = ")


def config_entries(config: str) -> list[tuple[str | None, str]]:
    """An operative config's lines grouped into (binding or macro name, or None; text): a binding with
    its continuation lines (a long value: indented, or a closing bracket), or one other line (a
    comment, an import, a blank)."""
    entries: list[tuple[str | None, str]] = []
    for line in config.splitlines(keepends=True):
        if entries and entries[-1][0] is not None and line[:1] in (" ", "\t", "]", ")", "}"):
            name, text = entries[-1]
            entries[-1] = (name, text + line)
        else:
            start = BINDING_START.match(line)
            entries.append((start["name"] if start else None, line))
    return entries


def is_default(name: str) -> bool:
    """Whether this invocation leaves the parameter `name` (scope/configurable.param) at its default."""
    try:
        gin.query_parameter(name)
    except ValueError:  # not bound: the operative config holds the configurable's default
        return True
    return False


def without_new_defaults(saved: str, config: str) -> str:
    """config without the bindings (not macros) the saved config lacks that this invocation leaves at
    their defaults (parameters added to mmmae after the run was made), nor its comments."""
    known = {name for name, _ in config_entries(saved)}
    return "".join(text for name, text in config_entries(config)
                   if not (text.startswith("#") or (name is not None and "." in name and name not in known
                                                    and is_default(name))))


def prepare_run_dir(run_dir: Path, resume: bool, config: str, steps: int) -> Path | None:
    """Check a resumed run's saved config against this one (refuse_existing_run has checked the rest);
    returns the checkpoint to resume from. A config that differs only in `pretrain.steps` extends the
    run (the schedule is recomputed over the new total; fewer steps than the checkpoint's are refused),
    and `pretrain.init_from` may be dropped or changed (the checkpoint holds the weights). A parameter
    the saved config lacks (added to mmmae since) resumes at its default; comments are not compared."""
    saved_config = run_dir / OPERATIVE_CONFIG
    checkpoint = latest_checkpoint(run_dir)
    if resume and saved_config.is_file():
        saved = saved_config.read_text()
        current = without_new_defaults(saved, config)
        saved = "".join(line for line in saved.splitlines(keepends=True) if not line.startswith("#"))
        difference = config_difference(RESUMABLE_LINES.sub("", saved), RESUMABLE_LINES.sub("", current),
                                       str(saved_config))
        if difference:
            raise RunDirError(f"--resume refused: {run_dir} was made with a different config:\n{difference}")
        done = checkpoint_step(checkpoint)
        if steps < done:
            raise RunDirError(f"--resume refused: pretrain.steps = {steps}, but {run_dir}'s latest checkpoint is at "
                              f"step {done}; give at least {done} steps (more extends the run)")
    return checkpoint


SAMPLE_COUNTS = ("bad_samples", "non_finite_dropped")  # logged as totals, not means: summing them counts samples


def log_metrics(accelerator: Accelerator, run_dir: Path, step: int, window: list[dict], extra: dict,
                per_rank: dict[str, float] | None = None) -> dict:
    """The logged scalars of the last steps, averaged over steps and processes (the sample counts
    SAMPLE_COUNTS summed instead, so that the column adds up to the run's total), then `extra`, then
    each process's own `per_rank` values as "<name>/rank<r>" (gathered, not averaged); one JSON line."""
    reduction = {k: "sum" if k in SAMPLE_COUNTS else "mean" for k in window[0]}
    window_values = {k: getattr(torch.stack([logs[k] for logs in window]).float(), reduction[k])() for k in window[0]}
    record = {"step": step,
              **{k: accelerator.reduce(v, reduction=reduction[k]).item() for k, v in window_values.items()},
              **extra}
    if per_rank:
        mine = torch.tensor([list(per_rank.values())], dtype=torch.float32, device=accelerator.device)
        for rank, values in enumerate(accelerator.gather(mine).tolist()):
            record.update({f"{name}/rank{rank}": value for name, value in zip(per_rank, values)})
    accelerator.log(record, step=step)
    if accelerator.is_main_process:
        with open(run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
    return record


def truncate_metrics(run_dir: Path, step: int) -> None:
    """Drop metric lines logged after `step`: after the checkpoint we resume from, or all of a
    run that stopped before its first checkpoint. A torn last line (power loss, full disk) is
    dropped with a warning; a torn line elsewhere is an error naming the file and line."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return
    lines = path.read_text(errors="replace").splitlines()
    kept = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number < len(lines):
                raise RunDirError(f"{path}, line {number}, is not JSON ({line[:60]!r}): the metrics of this run "
                                  "were edited or damaged; repair or remove that line, then resume") from None
            logger.warning("%s: its last line is torn (%d characters, no complete JSON record; the run stopped "
                           "while writing it): dropped", path, len(line))
            continue
        if record["step"] <= step:
            kept.append(line)
    path.write_text("".join(line + "\n" for line in kept))


def initialized_from(net: MaskedAutoencoder, source: str) -> InitReport:
    """`init_from` into net; a source that cannot be found or read, or that matches no weight, is a
    ConfigError naming the `pretrain.init_from` binding."""
    try:
        return load_matching_weights(net, source)
    except (FileNotFoundError, ValueError) as error:
        raise binding_error(f"pretrain.init_from = {source!r}: {error.args[0] if error.args else error}",
                            r"([\w/]+/)?pretrain\.init_from\s*=") from None


def save_figures(model: MaskedAutoencoder, batch: dict, out: ModelOutput, run_dir: Path, step: int) -> None:
    """A reconstruction PNG of every decoded modality that can be drawn (mmmae.viz_reconstruction:
    clips, spectrograms, IMU signals, captions), on the batch's first sample that has it; none of a
    modality whose target is not its tokenizer's (Modality.target: a teacher's features are not drawn)
    nor one whose decoder scores its prediction against its own target (Decoded.target: a diffusion
    decoder's predicted noise is not an image)."""
    for name, output in out.outputs.items():
        present = output.present.nonzero().flatten()
        if not len(present) or model.modalities[name].target is not None or output.prediction_target is not None:
            continue
        sample = int(present[0])
        figure = reconstruction_figure(model.modalities[name].tokenizer, batch[name], output, sample,
                                       f"{name}, step {step}, sample {sample} of the batch")
        if figure is not None:
            save_figure(figure, run_dir / "figures" / f"{name}_step{step:08d}.png")


def save_final_model(model: torch.nn.Module | dict[str, torch.Tensor], run_dir: Path) -> Path:
    """model.safetensors (of a model, or a state dict gathered from shards), written to a temporary
    name and renamed: whole or not at all."""
    path = run_dir / MODEL_FILE
    tmp = run_dir / f"{MODEL_FILE}.partial"
    if isinstance(model, dict):
        save_file(model, str(tmp), metadata={"format": "pt"})
    else:
        save_model(model, str(tmp))
    os.replace(tmp, path)
    return path


@gin.configurable(module="mmmae", denylist=["output_dir", "resume"])
def pretrain(
    output_dir: str,
    resume: bool = False,
    model: Callable[[], MaskedAutoencoder] = gin.REQUIRED,
    dataset: Callable[[], Dataset] = gin.REQUIRED,
    init_from: str | None = None,
    batch_size: int = 32,
    adaptive_batch: Callable[[], AdaptiveBatch] | None = None,
    steps: int = 1000,
    base_lr: float = 1.5e-4,
    min_lr_ratio: float = 0.0,
    warmup_steps: int = 100,
    weight_decay: float = 0.05,
    betas: Sequence[float] = (0.9, 0.95),
    clip_grad: float | None = None,
    grad_accum: int = 1,
    mixed_precision: str = "no",
    dynamo_backend: str | None = None,
    seed: int = 0,
    num_workers: int = 2,
    prefetch_factor: int = 2,
    save_every: int = 500,
    keep_checkpoints: int = 2,
    log_every: int = 10,
    viz_every: int = 500,
) -> dict:
    """Pretrain `model()` on `dataset()` into output_dir; returns the run summary.

    batch_size is per process; lr = base_lr * (batch_size * processes * grad_accum) / 256.
    adaptive_batch: batch_size is step 0's batch, and later steps' follow the model's token counts
    (`@AdaptiveBatch`, mmmae/data/adaptive_batch.py; lr still from batch_size); None: batch_size every step.
    steps, warmup_steps, save_every, log_every and viz_every count optimizer steps; num_workers
    loader processes each keep prefetch_factor batches ready. dynamo_backend: train the model
    under torch.compile with this backend ('inductor'; None: Accelerate's choice, which
    `accelerate launch --dynamo_backend` sets; the saved weights and evaluations use the
    uncompiled model). The gin
    `evaluations` (probes, retrievals) run at the end on the trained and a fresh model.
    init_from: a run directory, pretrained folder or zoo name whose weights (those that match by
    name and shape) the model starts from, reported in init_from.json; ignored when resuming (the
    checkpoint holds the weights). The random-init evaluations still use the fresh model.
    """
    check_settings({"steps": steps, "batch_size": batch_size, "base_lr": base_lr, "min_lr_ratio": min_lr_ratio,
                    "warmup_steps": warmup_steps, "weight_decay": weight_decay, "betas": betas, "clip_grad": clip_grad,
                    "grad_accum": grad_accum, "mixed_precision": mixed_precision, "seed": seed,
                    "num_workers": num_workers, "prefetch_factor": prefetch_factor, "save_every": save_every,
                    "keep_checkpoints": keep_checkpoints, "log_every": log_every, "viz_every": viz_every})
    run_dir = Path(output_dir)
    refuse_existing_run(run_dir, resume)
    accelerator = Accelerator(
        mixed_precision=mixed_precision, gradient_accumulation_steps=grad_accum, log_with="tensorboard",
        dynamo_backend=dynamo_backend, project_dir=str(run_dir),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
        fsdp_plugin=fsdp_plugin(mixed_precision),  # None unless launched with an FSDP config
    )
    check_launch(accelerator)
    with build_errors():  # a binding gin cannot build with: one message naming it
        net = initial_model(model, seed)  # seeds every RNG, then builds: what `mmmae eval --random_init` rebuilds
        data = dataset()
        tasks = evaluations()  # built before the operative config is written, so their bindings are in it
        batch_policy = adaptive_batch() if adaptive_batch is not None else None
    # The random-init evaluations run on a copy of the initial model: a rebuilt one would share gin singletons.
    initial = copy.deepcopy(net) if tasks else None
    report = None
    if init_from is not None and latest_checkpoint(run_dir) is None:
        report = initialized_from(net, init_from)
    # `mmmae check`'s step, on a small batch: a recipe that cannot train fails here, before the run directory exists.
    dry_step(net, data, min(batch_size, CHECK_BATCH), accelerator.device)
    check_labels(tasks)
    if len(data) < batch_size * accelerator.num_processes:
        raise binding_error(f"pretrain.batch_size = {batch_size}: the dataset's {len(data)} samples give no full "
                            f"batch on each of {accelerator.num_processes} processes; lower it or add samples",
                            r"([\w/]+/)?pretrain\.batch_size\s*=")
    if isinstance(data, IterableDataset) and hasattr(data, "uneven_epoch"):  # StreamingMediaDataset
        problem = data.uneven_epoch(batch_size, num_workers, accelerator.num_processes)
        if problem:
            raise binding_error(problem, r"([\w/]+/)?StreamingMediaDataset\.samples_per_epoch\s*=")
    batch_sampler = None
    if batch_policy is not None:
        try:
            batch_sampler = batch_policy.sampler(net, data, batch_size, steps, grad_accum, accelerator.num_processes,
                                                 seed)
        except ValueError as error:
            raise binding_error(f"pretrain.adaptive_batch: {error}",
                                r"([\w/]+/)?pretrain\.adaptive_batch\s*=") from None
    config = gin.operative_config_str()
    checkpoint = prepare_run_dir(run_dir, resume, config, steps)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / OPERATIVE_CONFIG).write_text(config)
        if report is not None:
            report.write(run_dir)
            accelerator.print("\n".join(report.lines()))

    global_batch = batch_size * accelerator.num_processes * grad_accum
    lr = scaled_lr(base_lr, global_batch)
    sharded_here = shard_on_cpu(accelerator, net, mixed_precision)  # FSDP on CPU processes (mmmae/sharding.py)
    optimizer, schedule = build_optimizer(net, lr, weight_decay, betas, steps, warmup_steps, min_lr_ratio)
    # A dataset may bring its own collate (MediaDataset flattens repeated clips); a stream shuffles itself.
    if isinstance(data, IterableDataset):  # each process reads its own shards (mmmae/data/rank_split.py)
        data = own_part(data, accelerator.process_index, accelerator.num_processes, num_workers)
    batching = (dict(batch_size=batch_size, shuffle=not isinstance(data, IterableDataset), drop_last=True)
                if batch_sampler is None else dict(batch_sampler=batch_sampler))
    loader = DataLoader(data, **batching, num_workers=num_workers, persistent_workers=num_workers > 0,
                        collate_fn=getattr(data, "collate", None), worker_init_fn=WorkerSignals(),
                        prefetch_factor=prefetch_factor if num_workers > 0 else None)
    if isinstance(data, IterableDataset):  # Accelerate's prepare below then neither dispatches nor shards it
        loader = prepare_stream_loader(accelerator, loader)
    if sharded_here:  # Accelerate would wrap the sharded model in DDP: only the optimizer and loader go to it
        optimizer, loader = accelerator.prepare(optimizer, loader)
    else:
        net, optimizer, loader = accelerator.prepare(net, optimizer, loader)

    step = 0
    if checkpoint is not None:
        step = load_checkpoint(accelerator, checkpoint, schedule, net, optimizer)
        accelerator.print(f"resumed from {checkpoint} at step {step}")
    if accelerator.is_main_process:
        truncate_metrics(run_dir, step)
    accelerator.init_trackers("tensorboard")

    with SignalWatch() as stop:
        settings = LoopSettings(steps, seed, clip_grad, log_every, save_every, keep_checkpoints, viz_every,
                                global_batch, tuple(batch_sampler.sizes[::grad_accum]) if batch_sampler else ())
        train_loop(accelerator, net, optimizer, schedule, loader, run_dir, step, settings, stop)
    summary = {"run_dir": str(run_dir), "steps": steps, "global_batch": global_batch, "lr": lr}
    weights = gathered_weights(net) if is_sharded(net) else None  # FSDP: collective, whole on the main process
    if accelerator.is_main_process:
        final = accelerator.unwrap_model(net, keep_torch_compile=False) if weights is None else \
            trained_copy(initial, weights, accelerator.device)
        summary["model"] = str(save_final_model(final, run_dir))
        summary.update(loss_curve(run_dir))
        summary["evaluations"] = run_evaluations(final, tasks, initial)
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return summary


def train_loop(accelerator: Accelerator, net: torch.nn.Module, optimizer: torch.optim.Optimizer,
               schedule: torch.optim.lr_scheduler.LRScheduler, loader: DataLoader, run_dir: Path, step: int,
               settings: LoopSettings, stop: SignalWatch) -> None:
    """Optimizer steps from `step` to settings.steps, checkpointing every settings.save_every and at the end;
    resumes mid-epoch exactly (seeded data order, skipped batches, per-step mask seeds). After a
    step during which `stop` saw SIGTERM/SIGINT: a checkpoint, then StopRequested."""
    accum = accelerator.gradient_accumulation_steps
    modalities = list(accelerator.unwrap_model(net).modalities)
    micro = step * accum
    progress = tqdm(total=settings.steps, initial=step, desc="pretrain", disable=not accelerator.is_local_main_process)
    window, tic = [], time.perf_counter()
    wait = DataWait()  # seconds this process waited for its batches, logged per rank
    while step < settings.steps:
        epoch, skip = divmod(micro, len(loader))
        loader.set_epoch(epoch)
        if hasattr(loader.dataset, "set_epoch"):  # per-sample seeds; accelerate skips it over processes
            loader.dataset.set_epoch(epoch)
        batches = accelerator.skip_first_batches(loader, skip) if skip else loader
        unreadable = torch.zeros((), device=accelerator.device)  # samples a media dataset skipped this epoch
        for batch in wait.timed(batches):
            with accelerator.accumulate(net):
                rng = MaskRNG.seeded(mask_seed(settings.seed, micro), accelerator.device, accelerator.process_index,
                                     accelerator.num_processes, step=step)
                torch.manual_seed(module_seed(settings.seed, micro, accelerator.process_index))
                batch, dropped = drop_non_finite(batch, modalities)
                bad = batch.pop("bad_samples", torch.zeros(1, device=accelerator.device)).sum().float()
                unreadable += bad
                out = net(batch, rng)
                out.logs["non_finite_dropped"] = torch.tensor(float(dropped), device=out.loss.device)
                out.logs["bad_samples"] = bad
                accelerator.backward(out.loss)
                if accelerator.sync_gradients and settings.clip_grad:
                    accelerator.clip_grad_norm_(net.parameters(), settings.clip_grad)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            micro += 1
            window.append(out.logs)
            if not accelerator.sync_gradients:
                continue
            schedule.step()
            step += 1
            progress.update(1)
            if step % settings.log_every == 0 or step in (1, settings.steps):
                elapsed, tic = time.perf_counter() - tic, time.perf_counter()
                clips = sum(settings.global_batch_at(s) for s in range(step - len(window) // accum, step))
                extra = {"lr": schedule.get_last_lr()[0], "clips_per_s": clips / elapsed}
                if settings.batch_sizes:
                    extra["batch_size"] = settings.batch_sizes[step - 1]  # per process, of the step just taken
                steps_logged = len(window) / accum
                record = log_metrics(accelerator, run_dir, step, window, extra,
                                     {"data_wait_s": wait.take() / steps_logged,
                                      "samples_per_s": clips / accelerator.num_processes / elapsed})
                progress.set_postfix(loss=f"{record['loss']:.4f}")
                window = []
            if step % settings.viz_every == 0 and accelerator.is_main_process:
                save_figures(accelerator.unwrap_model(net), batch, out, run_dir, step)
            signum = stop.requested(accelerator) if step < settings.steps else None
            if step % settings.save_every == 0 or step == settings.steps or signum:
                checkpoint = save_checkpoint(accelerator, net, run_dir, step, schedule, settings.keep_checkpoints,
                                             optimizer)
            if signum:
                progress.close()  # ends the progress line, so that the CLI's message starts a line of its own
                raise StopRequested(signum, step, checkpoint)
            if step == settings.steps:
                break
        report_unreadable(accelerator, epoch, unreadable)
    progress.close()


def report_unreadable(accelerator: Accelerator, epoch: int, unreadable: torch.Tensor) -> None:
    """Print how many unreadable samples the dataset skipped in this epoch, over all processes (if any)."""
    total = int(accelerator.reduce(unreadable, reduction="sum").item())
    if total and accelerator.is_main_process:  # tqdm.write: on a line of its own, above the progress bar
        tqdm.write(f"epoch {epoch}: {total} unreadable samples skipped (each logged with its file and reason)")


def loss_curve(run_dir: Path) -> dict:
    """First and last logged loss of a run, from metrics.jsonl."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    if not records:
        return {}
    return {"loss_start": records[0]["loss"], "loss_end": records[-1]["loss"],
            "loss_start_step": records[0]["step"], "loss_end_step": records[-1]["step"]}
