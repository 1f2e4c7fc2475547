"""`mmmae train | chain | check | describe | eval | ttt | export | convert | zoo | viz-mask | validate | preflight |
shard | bench | demo-media | inpaint`: gin files and bindings in; runs, weights, figures and reports out."""

import argparse
import json
import os
import shlex
import signal
import sys
from pathlib import Path

from mmmae.bench import STEP_DTYPES, STEP_VARIANTS
from mmmae.checkpoint import CheckpointLoadError, CheckpointWriteError
from mmmae.config import OPERATIVE_CONFIG, ConfigError, parse_config, with_bindings
from mmmae.eval.report import EVALUATION_LINES, comparison_lines, extract_lines, flat_metrics
from mmmae.gin_scan import without_gin_calls
from mmmae.stop_signals import StopRequested, Terminated, raise_on_sigterm
from mmmae.types import BindingProblem


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _add_gin_flags(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument("--gin_file", action="append", default=[], required=required,
                        help="gin file (repeatable; later files override earlier ones)")
    parser.add_argument("--gin_param", action="append", default=[],
                        help="a binding such as 'pretrain.steps = 100' (repeatable; applied after the files)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmmae", description="Multimodal masked modeling.")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="pretrain a masked model from gin files")
    _add_gin_flags(train, required=True)
    train.add_argument("--output_dir", required=True, help="run directory (checkpoints, logs, figures, weights)")
    train.add_argument("--resume", action="store_true", help="continue from the run directory's latest checkpoint; "
                       "with a larger pretrain.steps (--gin_param), extend a run: the warmup-cosine schedule is "
                       "recomputed over the new total")
    train.add_argument("--init_from", help="start from the weights of a run, pretrained folder or zoo model (those "
                       "matching by name and shape; the rest are reported in init_from.json)")
    chain = commands.add_parser("chain", help="run the stages a chain file declares (gin/chains/*.gin), each in its "
                                "own folder; rerun to resume, finished stages are skipped")
    _add_gin_flags(chain, required=True)
    chain.add_argument("--output_dir", required=True, help="the chain's folder: chain.json and one folder per stage")
    evaluate = commands.add_parser("eval", help="a model's probes, kNN, fine-tuning and retrievals (gin/eval/*.gin)")
    evaluate.add_argument("--model", "--run_dir", dest="model", required=True,
                          help="a run directory, a pretrained directory or a model-zoo name")
    _add_gin_flags(evaluate, required=False)
    evaluate.add_argument("--random_init", action="store_true",
                          help="also evaluate the same model at its initialisation (its config's pretrain.seed, "
                          "before step 1; for a run directory, the random_init its training summary printed)")
    extract = commands.add_parser("extract", help="write a model's features of a dataset to disk (safetensors or npy "
                                  "shards and index.json); the dataset is extract_features.dataset in gin")
    extract.add_argument("--model", required=True, help="a run directory, a pretrained directory or a model-zoo name")
    extract.add_argument("--output_dir", required=True, help="folder for the shards and index.json")
    _add_gin_flags(extract, required=False)
    extract.add_argument("--modality", help="the modality to encode (default video)")
    extract.add_argument("--format", choices=["safetensors", "npy"], help="shard format (default safetensors)")
    extract.add_argument("--shard_size", type=int, help="samples per shard (default 4096)")
    extract.add_argument("--batch_size", type=int, help="samples encoded at a time (default 64)")
    extract.add_argument("--tokens", action="store_true", help="every token (N, D) per sample, not the mean (D,)")
    extract.add_argument("--overwrite", action="store_true", help="replace features extracted earlier into output_dir")
    extract.add_argument("--segment_frames", type=int, help="segment mode: one L2-normalised embedding per window of "
                         "this many frames of each (long) video of extract_segments.dataset, (L, D) a sample, padded")
    extract.add_argument("--segment_stride", type=int, help="segment mode: frames between window starts (default: "
                         "--segment_frames, windows back to back)")
    ttt = commands.add_parser("ttt", help="test-time training along a stream: masked-reconstruction steps before "
                              "each prediction of the model's task head, against the model frozen (eval/ttt.gin)")
    ttt.add_argument("--model", required=True, help="a run directory, a pretrained directory or a model-zoo name, "
                     "with a Classification head (recipes/ttt_mae.gin)")
    ttt.add_argument("--output_dir", required=True, help="folder for ttt.jsonl (one line per item), summary.json "
                     "and config.gin")
    _add_gin_flags(ttt, required=False)
    check = commands.add_parser("check", help="parse a recipe, build it and run one training step on one batch; "
                                "print parameters, tokens, step time and memory; write nothing")
    _add_gin_flags(check, required=True)
    describe = commands.add_parser("describe", help="a configurable's parameters, defaults, docstring and the "
                                                    "package's gin bindings of it (no NAME: list them all)")
    describe.add_argument("name", nargs="?", help="e.g. TubeMasking, mmmae.TubeMasking, video/TubeMasking, pretrain")
    viz_mask = commands.add_parser("viz-mask",
                                   help="draw what a recipe's maskers hide on real samples (PNG per modality)")
    _add_gin_flags(viz_mask, required=True)
    viz_mask.add_argument("--output_dir", required=True, help="folder for <modality>_masks.png")
    viz_mask.add_argument("--samples", type=int, default=4, help="samples drawn (the first of the training data)")
    viz_mask.add_argument("--seed", type=int, default=0, help="mask seed")
    validate = commands.add_parser("validate", help="read every row of a media dataset as training will, and report "
                                   "each one that cannot be used (a recipe's datasets with --gin_file)")
    validate.add_argument("source", nargs="?", help="a manifest (.csv/.jsonl) or a class-per-folder root directory "
                                                    "(or none, with --gin_file)")
    _add_gin_flags(validate, required=False)
    validate.add_argument("--imu_devices", nargs="*", default=None, help="IMU devices every log must have (SOURCE "
                                                                         "only; a recipe's are MediaDataset.imu_rates)")
    validate.add_argument("--max_gap", type=float, default=None,
                          help="largest allowed gap in an IMU log, seconds (default: judged by each device's own "
                               "sampling period, as training does; SOURCE only, a recipe's is MediaDataset.max_gap)")
    validate.add_argument("--report", help="also write the report as JSON to this file")
    validate.add_argument("--audio_in_video", action="store_true",
                          help="a class folder's clips carry their audio track (check it too)")
    demo = commands.add_parser("demo-media", help="write MovingDigits as mp4 (with audio), IMU CSV and captions")
    demo.add_argument("--output_dir", required=True, help="folder for train/ and test/ class-per-folder trees")
    demo.add_argument("--train_clips", type=int, default=512)
    demo.add_argument("--test_clips", type=int, default=128)
    preflight = commands.add_parser("preflight", help="under the training's launcher: check that the processes meet "
                                    "and share code, versions and gin config (docs/multinode.md); exit 1 naming the "
                                    "ranks that differ or do not answer")
    _add_gin_flags(preflight, required=True)
    preflight.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for every process")
    preflight.add_argument("--data", action="store_true", help="also build pretrain.dataset and check that it "
                           "splits among the processes and their loader workers")
    shard = commands.add_parser("shard", help="pack a media dataset's files into webdataset tar shards to stream")
    shard.add_argument("source", help="a manifest (.csv/.jsonl) or a class-per-folder root directory")
    shard.add_argument("output_dir", help="folder for shard-000000.tar, ...")
    shard.add_argument("--per_shard", type=int, default=256, help="samples per shard")
    shard.add_argument("--audio_in_video", action="store_true", help="a class folder's clips carry their audio track")
    bench = commands.add_parser("bench", help="benchmarks; each prints its ratio against a baseline from the same run")
    kinds = bench.add_subparsers(dest="kind", required=True)
    data = kinds.add_parser("data", help="data loading clips/s against the recipe model's consumption")
    _add_gin_flags(data, required=True)
    data.add_argument("--batches", type=int, default=10, help="batches timed after the first")
    data.add_argument("--steps", type=int, default=5, help="model steps timed after the first")
    data.add_argument("--workers", type=int, default=None, help="loader processes (default: pretrain.num_workers)")
    step = kinds.add_parser("step", help="pretraining-step clips/s, FLOP utilisation and peak memory against "
                                         "transformers' VideoMAE, and mmmae's variants against their baselines")
    step.add_argument("--size", choices=("tiny", "small", "base"), default="small", help="ViT size (VideoMAE's)")
    step.add_argument("--frames", type=int, default=16)
    step.add_argument("--image", type=int, default=224, help="frame height and width")
    step.add_argument("--ratio", type=float, default=0.9, help="tube masking ratio")
    step.add_argument("--batch", type=int, default=2)
    step.add_argument("--depth", type=int, default=12, help="encoder blocks")
    step.add_argument("--decoder_depth", type=int, default=4)
    step.add_argument("--variants", default=",".join(STEP_VARIANTS),
                      help=f"comma-separated, of {', '.join(STEP_VARIANTS)}")
    step.add_argument("--rounds", type=positive_int, default=5, help="alternating rounds (the spread is over them)")
    step.add_argument("--steps", type=positive_int, default=2, help="steps of each contender per round")
    step.add_argument("--device", default="cpu")
    step.add_argument("--dtype", choices=STEP_DTYPES, default="float32", help="autocast dtype of the forward")
    step.add_argument("--profile", action="store_true",
                      help="also split both models' step time by op family (torch.profiler)")
    step.add_argument("--json", default=None, help="also write the measurements to this file")
    memory = kinds.add_parser("memory", help="parameter, gradient, optimizer and activation memory of a recipe's "
                                             "step per GPU, per strategy, and the largest batch per GPU size")
    _add_gin_flags(memory, required=True)
    memory.add_argument("--gpu_gb", default="24,40,80", help="GPU sizes in GiB, comma-separated")
    memory.add_argument("--processes", type=positive_int, default=8, help="GPUs (FSDP divides the model state by it)")
    memory.add_argument("--json", default=None, help="also write the plan (bytes) to this file")
    _add_weight_commands(commands)
    _add_inpaint_command(commands)
    return parser


def frame_size(text: str) -> tuple[int, ...]:
    """argparse type: 'H' or 'HxW', positive pixels."""
    try:
        sides = tuple(int(side) for side in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not H or HxW") from None
    if len(sides) not in (1, 2) or min(sides) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not H or HxW in pixels")
    return sides


def _add_inpaint_command(commands) -> None:
    """`mmmae inpaint` (mmmae/inpaint.py, docs/inpainting.md)."""
    inpaint = commands.add_parser("inpaint", help="fill what a mask hides in a video, an image or a dataset's clips "
                                  "with a trained model; writes PATH.mp4 and PATH.png")
    inpaint.add_argument("--model", required=True, help="a run directory, a pretrained directory or a model-zoo name")
    inpaint.add_argument("--input", required=True, help="a video file, an image (a still clip), a folder of them, or "
                         "a gin data file binding inpaint.dataset = @SomeDataset()")
    inpaint.add_argument("--mask", required=True, help="what to fill, in pixels of the clip the model sees: "
                         "box:y0,x0,y1,x1[@t0-t1], span:t0-t1, random:R, or a .png / .npy file (nonzero = fill); "
                         "join with '+' (ends excluded; docs/inpainting.md)")
    inpaint.add_argument("--output", required=True, help="PATH of PATH.mp4 and PATH.png")
    inpaint.add_argument("--samples", type=positive_int, default=1, help="answers drawn (generative decoders only)")
    inpaint.add_argument("--steps", type=positive_int, help="sampling steps (generative decoders only)")
    inpaint.add_argument("--seed", type=int, default=0, help="seed of random masks and of sampling")
    inpaint.add_argument("--modality", default="video", help="the modality to fill (default video)")
    inpaint.add_argument("--clips", type=positive_int, default=4, help="clips taken from a folder or dataset")
    inpaint.add_argument("--frames", type=positive_int, help="frames per clip (default: the model's training clips')")
    inpaint.add_argument("--size", type=frame_size, help="H or HxW of each frame (default: the training clips')")


def _add_weight_commands(commands) -> None:
    """`mmmae export`, `mmmae convert` and `mmmae zoo list | download | verify`."""
    export = commands.add_parser("export", help="write a run (or pretrained folder) as a pretrained folder with "
                                                "metadata and a model card, optionally encoder only")
    export.add_argument("--src", required=True, help="a run directory, a checkpoint of one (sharded or not) or a "
                                                      "pretrained folder")
    export.add_argument("--dst", required=True, help="the pretrained folder to write")
    export.add_argument("--encoder_only", action="store_true", help="leave out decoders and objective heads")
    export.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default="float32",
                        help="storage dtype of the weights (loading casts back)")
    export.add_argument("--description", help="one line for the model card")
    export.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE",
                        help="metadata to record, e.g. recipe=recipes/quickstart.gin (repeatable; JSON values)")
    convert = commands.add_parser("convert", help="convert another codebase's checkpoint into a pretrained folder")
    convert.add_argument("--from", dest="kind", required=True, help="hf-videomae, hf-vitmae, videomae, videomae-v2, "
                                                                    "mae-st or audiomae")
    convert.add_argument("--src", required=True, help="checkpoint file, or an HF save_pretrained folder")
    convert.add_argument("--dst", required=True, help="the pretrained folder to write")
    convert.add_argument("--allow_pickle", action="store_true",
                         help="accept a pickle (.pth/.pt/.bin) checkpoint. Unpickling can run arbitrary code: only "
                              "for files you trust; it is loaded with torch.load(weights_only=True)")
    convert.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                         help="what the checkpoint does not say, e.g. heads=6 (repeatable; values parsed as JSON)")
    zoo = commands.add_parser("zoo", help="the model zoo: named weights checked against their sha256")
    actions = zoo.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="every named model, its recipe and measured metrics")
    download = actions.add_parser("download", help="fetch a named model into the cache and verify it")
    download.add_argument("name")
    verify = actions.add_parser("verify", help="check cached (or shipped) files against the registry's sha256")
    verify.add_argument("names", nargs="*", help="models to check (default: all)")


def parse_options(pairs: list[str]) -> dict:
    """['heads=6', 'name=x'] -> {'heads': 6, 'name': 'x'}: values as JSON when they parse, else strings."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"{pair!r} is not KEY=VALUE")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def run_export(args: argparse.Namespace) -> None:
    import torch

    from mmmae.zoo.pretrained import from_pretrained, locate, save_pretrained

    files = locate(args.src)
    model = from_pretrained(args.src)
    metadata = dict(files.metadata)
    summary = files.directory / "summary.json"
    if summary.is_file():
        metadata.setdefault("metrics", flat_metrics(json.loads(summary.read_text())))
    if args.description:
        metadata["description"] = args.description
    metadata.update(parse_options(args.meta))
    metadata.setdefault("source", str(files.directory))
    for key in ("format", "version", "mmmae_version", "encoder_only", "stored_dtype"):
        metadata.pop(key, None)
    dtype = getattr(torch, args.dtype)
    print(save_pretrained(model, args.dst, files.config.read_text(), metadata, args.encoder_only, dtype))


def run_convert(args: argparse.Namespace) -> None:
    from mmmae.zoo.convert import convert_checkpoint

    print(convert_checkpoint(args.kind, args.src, args.dst, args.allow_pickle, parse_options(args.option)))


def run_zoo(args: argparse.Namespace) -> int:
    from mmmae.zoo.registry import Registry

    registry = Registry.load()
    if args.action == "list":
        for entry in registry.models.values():
            cached = "cached" if registry.cached(entry.name).is_dir() else "not downloaded"
            print(f"{entry.name}: {entry.description} (recipe {entry.recipe}; {cached})")
            for metric, value in entry.metrics.items():
                print(f"    {metric}: {value}")
        return 0
    if args.action == "download":
        print(registry.fetch(args.name))
        return 0
    failed = 0
    for name in args.names or list(registry.models):
        folder = registry.cached(name)
        if not folder.is_dir():
            entry = registry.entry(name)
            folder = registry.path.parent / entry.source
            if not folder.is_dir():
                print(f"{name}: not downloaded (run `mmmae zoo download {name}`)")
                continue
        bad = registry.check(name, folder)
        failed += bool(bad)
        for filename, expected, actual in bad:
            print(f"{name}: {folder / filename} sha256 {actual or '(missing)'} != registered {expected}")
        if not bad:
            print(f"{name}: {folder} ok ({len(registry.entry(name).files)} files match their sha256)")
    return 1 if failed else 0


def format_summary(summary: dict) -> str:
    lines = [f"run directory: {summary['run_dir']}"]
    if "loss_start" in summary:
        lines.append(f"loss: {summary['loss_start']:.4f} (step {summary['loss_start_step']}) -> "
                     f"{summary['loss_end']:.4f} (step {summary['loss_end_step']})")
    for entry in summary.get("evaluations", []):
        for init in ("pretrained", "random_init"):
            if init in entry:
                lines += EVALUATION_LINES[entry["kind"]](init, entry[init])
    lines += comparison_lines(summary.get("evaluations", []))
    if "model" in summary:
        run = Path(summary["run_dir"])
        lines.append(f"files: weights {summary['model']}, config {run / OPERATIVE_CONFIG}, metrics "
                     f"{run / 'metrics.jsonl'}, figures {run / 'figures'}, checkpoints {run / 'checkpoints'}, "
                     f"TensorBoard {run / 'tensorboard'}")
    return "\n".join(lines)


def resume_command(args: argparse.Namespace) -> str:
    """The `mmmae train ... --resume` command line that continues the run `args` started, with
    absolute paths so that it works from any folder (gin files found in the package stay as given)."""
    files = [str(Path(f).resolve()) if Path(f).is_file() else f for f in args.gin_file]
    words = ["mmmae", args.command, *[w for f in files for w in ("--gin_file", f)],
             *[w for p in args.gin_param for w in ("--gin_param", p)],
             "--output_dir", str(Path(args.output_dir).resolve())]
    if args.command == "chain":  # a chain resumes by running it again
        return shlex.join(words)
    return shlex.join([*words, *(["--init_from", args.init_from] if args.init_from else []), "--resume"])


def run_train(args: argparse.Namespace) -> dict:
    """Parse, then pretrain; a run directory that cannot be used (a run without --resume, --resume
    with another config or a checkpoint this launch cannot load) exits with its message."""
    from mmmae.train import RunDirError, pretrain

    parse_config(args.gin_file, [*args.gin_param, *([f"pretrain.init_from = {args.init_from!r}"]
                                                    if args.init_from else [])])
    try:
        return pretrain(output_dir=args.output_dir, resume=args.resume)
    except (RunDirError, CheckpointLoadError) as error:
        sys.exit(f"mmmae train: {without_gin_calls(error)}")


def run_chain_command(args: argparse.Namespace) -> None:
    """Every stage of the chain, then each stage's summary."""
    from mmmae.chain import run_chain

    for summary in run_chain(args.output_dir, args.gin_file, args.gin_param):
        print(format_summary(summary))


def run_eval(args: argparse.Namespace) -> dict:
    from mmmae.eval.evaluate import evaluate_run

    return evaluate_run(args.model, args.gin_file, args.gin_param, args.random_init)


def run_extract(args: argparse.Namespace) -> None:
    from mmmae.eval.extract import extract_run

    flags = {"modality": args.modality, "fmt": args.format, "shard_size": args.shard_size,
             "batch_size": args.batch_size, "pooled": False if args.tokens else None,
             "overwrite": True if args.overwrite else None, "segment_frames": args.segment_frames,
             "segment_stride": args.segment_stride}
    options = {key: value for key, value in flags.items() if value is not None}  # unset flags leave gin's bindings
    files = extract_run(args.model, args.output_dir, args.gin_file, args.gin_param, **options)
    print("\n".join(extract_lines(files)))


def run_check(args: argparse.Namespace) -> None:
    from mmmae.check import check_recipe, format_check

    parse_config(args.gin_file, args.gin_param)
    print(format_check(check_recipe()))


def run_describe(args: argparse.Namespace) -> None:
    from mmmae.describe import catalogue, describe

    print(describe(args.name) if args.name else catalogue())


def run_viz_mask(args: argparse.Namespace) -> None:
    from mmmae.viz_mask import visualize_masks

    parse_config(args.gin_file, args.gin_param)
    for path in visualize_masks(args.output_dir, args.samples, args.seed):
        print(path)


def run_validate(args: argparse.Namespace) -> int:
    """Check SOURCE, or the datasets of the recipe --gin_file/--gin_param configure; 1 if any row is bad."""
    from mmmae.data.media.validation_report import check_datasets, format_report, recipe_datasets, source_datasets

    if (args.source is None) == (not args.gin_file):
        raise ConfigError("give either SOURCE (a folder or manifest) or --gin_file (a recipe), not both or neither")
    if args.gin_file:
        parse_config(args.gin_file, args.gin_param)
        named = recipe_datasets()
    else:
        named = source_datasets(args.source, args.audio_in_video, args.imu_devices, args.max_gap)
    reports = check_datasets(named)
    print(format_report(reports))
    if args.report:
        Path(args.report).write_text(json.dumps(reports, indent=2))
    return 1 if any(report.get("problems") for report in reports) else 0


def run_preflight(args: argparse.Namespace) -> None:
    """The preflight report on rank 0; a disagreement exits 1 with its message."""
    from mmmae.preflight import PreflightError, preflight

    parse_config(args.gin_file, args.gin_param)
    try:
        report = preflight(args.timeout, args.data)
    except PreflightError as error:
        sys.exit(f"mmmae preflight: {error}")
    if report:
        print(report)


def run_shard(args: argparse.Namespace) -> None:
    from mmmae.data.media.shards import write_shards
    from mmmae.data.media.validation_report import load_source

    rows = load_source(args.source, args.audio_in_video)
    shards = write_shards(rows, args.output_dir, args.per_shard)
    print(f"{len(shards)} shards in {args.output_dir} from {len(rows)} rows (set SHARD_SAMPLES = {len(rows)}, "
          "less any rows reported missing)")


def run_bench(args: argparse.Namespace) -> None:
    if args.kind == "step":
        return run_step_bench(args)
    if args.kind == "memory":
        return run_memory_bench(args)
    from mmmae.bench.data import bench_data, format_data_bench

    parse_config(args.gin_file, args.gin_param)
    print(format_data_bench(bench_data(args.batches, args.steps, args.workers)))


def run_memory_bench(args: argparse.Namespace) -> None:
    from mmmae.bench.memory import format_memory_plan, memory_plan_json, parse_gpu_gb, plan_memory

    gpu_gb = parse_gpu_gb(args.gpu_gb)
    if args.json and not Path(args.json).resolve().parent.is_dir():  # before measuring, not after
        sys.exit(f"mmmae bench: --json {args.json}: the folder {Path(args.json).resolve().parent} does not exist; "
                 "create it or give a path in an existing folder")
    parse_config(args.gin_file, args.gin_param)
    plan = plan_memory(" + ".join(args.gin_file), gpu_gb, args.processes)
    print(format_memory_plan(plan))
    if args.json:
        Path(args.json).write_text(memory_plan_json(plan))


def run_step_bench(args: argparse.Namespace) -> None:
    import dataclasses

    from mmmae.bench.contenders import Geometry
    from mmmae.bench.step import bench_step, format_step_bench

    geometry = Geometry(args.size, args.frames, args.image, args.ratio, args.batch, args.depth, args.decoder_depth)
    result = bench_step(geometry, [v.strip() for v in args.variants.split(",") if v.strip()], args.rounds,
                        args.steps, args.device, args.dtype, profile=args.profile)
    print(format_step_bench(result))
    if args.json:
        Path(args.json).write_text(json.dumps(dataclasses.asdict(result), indent=2))


def run_eval_command(args: argparse.Namespace) -> None:
    print(format_summary(run_eval(args)))


def run_ttt_command(args: argparse.Namespace) -> None:
    """`test_time_train` configured by the model's config.gin, eval/ttt.gin and the flags; prints the summary."""
    from mmmae.ttt.run import run_ttt
    from mmmae.ttt.summary import summary_lines

    summary = run_ttt(args.model, args.output_dir, args.gin_file, args.gin_param)
    steps = summary["settings"]["steps"]
    print("\n".join([f"test-time training of {args.model} ({summary['settings']['memory']} memory, {steps} "
                      f"step{'' if steps == 1 else 's'} per item): {args.output_dir}", *summary_lines(summary)]))


def run_inpaint_command(args: argparse.Namespace) -> None:
    from mmmae.inpaint import run_inpaint

    paths = run_inpaint(args.model, args.input, args.mask, args.output, args.samples, args.steps, args.seed,
                        args.modality, args.clips, args.frames, args.size)
    print("\n".join(map(str, paths)))


WEIGHT_COMMANDS = {"zoo": run_zoo, "export": run_export, "convert": run_convert, "extract": run_extract,
                   "eval": run_eval_command, "ttt": run_ttt_command, "inpaint": run_inpaint_command}


def run_weight_command(args: argparse.Namespace) -> None:
    """A command on weights; a bad file, name, key or binding exits with its message, not a traceback."""
    try:
        code = WEIGHT_COMMANDS[args.command](args)
    except BindingProblem as error:  # a binding the model cannot use: where the config set it
        sys.exit(f"mmmae {args.command}: {with_bindings(error)}")
    except (ValueError, FileNotFoundError, FileExistsError, KeyError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else without_gin_calls(error)
        sys.exit(f"mmmae {args.command}: {message}")
    if code:
        sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    raise_on_sigterm()
    try:
        if args.command == "validate":
            sys.exit(run_validate(args))
        if args.command == "bench":
            return run_bench(args)
        if args.command == "preflight":
            return run_preflight(args)
        if args.command == "shard":
            return run_shard(args)
        if args.command == "demo-media":
            from mmmae.data.media.synthetic import write_demo_media

            return print(write_demo_media(args.output_dir, args.train_clips, args.test_clips))
        if args.command == "check":
            return run_check(args)
        if args.command == "describe":
            return run_describe(args)
        if args.command == "viz-mask":
            return run_viz_mask(args)
        if args.command == "chain":
            return run_chain_command(args)
        if args.command in WEIGHT_COMMANDS:
            return run_weight_command(args)
        summary = run_train(args)
    except ConfigError as error:
        sys.exit(f"mmmae {args.command}: {without_gin_calls(error)}")
    except CheckpointWriteError as error:
        sys.exit(f"mmmae {args.command}: {without_gin_calls(error)}")
    except StopRequested as stop:
        print(f"mmmae {args.command}: {without_gin_calls(stop)}. To continue: {resume_command(args)}", file=sys.stderr)
        sys.exit(stop.exit_code)
    except KeyboardInterrupt:  # Ctrl-C outside training steps (which stop with a checkpoint instead)
        print(f"\nmmmae {args.command}: interrupted (Ctrl-C)", file=sys.stderr)
        sys.exit(128 + signal.SIGINT)
    except Terminated:
        print(f"\nmmmae {args.command}: terminated (SIGTERM)", file=sys.stderr)
        sys.exit(128 + signal.SIGTERM)
    if os.environ.get("RANK", "0") == "0":  # one summary for a launch of several processes
        print(format_summary(summary))
