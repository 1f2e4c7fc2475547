"""`mmmae train | eval`: gin files and bindings in, runs out."""

import argparse
import sys
from pathlib import Path

from mmmae.config import OPERATIVE_CONFIG, ConfigError, parse_config


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
    train.add_argument("--resume", action="store_true", help="continue from the run directory's latest checkpoint")
    evaluate = commands.add_parser("eval", help="linear probe of a run's encoder on frozen features")
    evaluate.add_argument("--run_dir", required=True, help="a run directory written by `mmmae train`")
    _add_gin_flags(evaluate, required=False)
    evaluate.add_argument("--random_init", action="store_true",
                          help="also probe the same architecture freshly initialised, for comparison")
    return parser


def format_summary(summary: dict) -> str:
    lines = [f"run directory: {summary['run_dir']}"]
    if "loss_start" in summary:
        lines.append(f"loss: {summary['loss_start']:.4f} (step {summary['loss_start_step']}) -> "
                     f"{summary['loss_end']:.4f} (step {summary['loss_end_step']})")
    for name, result in summary.get("probe", {}).items():
        lines.append(f"linear probe, {name}: test accuracy {result['test_accuracy']:.3f} "
                     f"(train {result['train_accuracy']:.3f})")
    if "model" in summary:
        run = Path(summary["run_dir"])
        lines.append(f"files: weights {summary['model']}, config {run / OPERATIVE_CONFIG}, metrics "
                     f"{run / 'metrics.jsonl'}, figures {run / 'figures'}, checkpoints {run / 'checkpoints'}, "
                     f"TensorBoard {run / 'tensorboard'}")
    return "\n".join(lines)


def run_train(args: argparse.Namespace) -> dict:
    from mmmae.train import pretrain

    parse_config(args.gin_file, args.gin_param)
    return pretrain(output_dir=args.output_dir, resume=args.resume)


def run_eval(args: argparse.Namespace) -> dict:
    from mmmae.eval.evaluate import evaluate_run

    return evaluate_run(Path(args.run_dir), args.gin_file, args.gin_param, args.random_init)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        summary = run_train(args) if args.command == "train" else run_eval(args)
    except ConfigError as error:
        sys.exit(f"mmmae {args.command}: {error}")
    print(format_summary(summary))
