"""The `xmd` command: build the world, index the clips, run the study, build the book."""

from __future__ import annotations

import argparse
import json
import sys

from .config import ConfigError, load_profile


def _world(args: argparse.Namespace) -> None:
    from .world import build_world

    profile = load_profile(args.profile)
    if profile.data.source != "world":
        raise SystemExit(f"profile {profile.name!r} reads VGGSound ({profile.data.index_csv}); it has no embedded world")
    paths = build_world(profile, workers=args.workers)
    print(f"world ready: {paths.root}")


def _index(args: argparse.Namespace) -> None:
    from .study import prepare, split_summary

    inputs = prepare(load_profile(args.profile))
    print(split_summary(inputs.clips).to_string())
    print(f"dropped clips: {len(inputs.dropped)} (report: results/<profile>/dropped_clips.csv)")


def _experts(args: argparse.Namespace) -> None:
    from .study import ensure_models, ensure_world

    profile = load_profile(args.profile)
    ensure_world(profile)
    ensure_models(profile, tuple(args.models) if args.models else None)


def _eval(args: argparse.Namespace) -> None:
    from .evaluate import evaluate, load_record
    from .models.registry import load_model
    from .study import ensure_models, prepare

    profile = load_profile(args.profile)
    inputs = prepare(profile)
    ensure_models(profile, (args.model,))
    adapter = load_model(args.model, profile)
    run = args.run or (args.model if args.mode == "letters" else f"{args.model}@generate")
    evaluate(adapter, profile, inputs.split(args.split), args.condition, args.split, run=run, mode=args.mode)
    record = load_record(profile, run, args.split, args.condition)
    print(json.dumps({k: record[k] for k in ("run", "split", "condition", "clips", "errors", "accuracy", "timings")}, indent=1))


def _study(args: argparse.Namespace) -> None:
    from .evaluate import evaluate_models
    from .runner import STUDY_NOTEBOOKS, run_study
    from .study import ensure_models, ensure_world

    profile = load_profile(args.profile)
    # the long stages run here, with progress bars; the notebooks then find their results
    ensure_world(profile)
    ensure_models(profile)
    print(evaluate_models(profile).to_string())
    print(evaluate_models(profile, splits=("analysis",), mode="generate").to_string())
    names = tuple(args.only) if args.only else STUDY_NOTEBOOKS
    print(json.dumps(run_study(profile, names), indent=1))


def _book(args: argparse.Namespace) -> None:
    from .runner import build_book

    print(f"book: {build_book(strict=not args.lenient)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="xmd", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("world", help="build the embedded world of a profile")
    p.add_argument("--profile", default="tiny")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.set_defaults(func=_world)

    p = sub.add_parser("index", help="index, probe and split the clips; write the question table")
    p.add_argument("--profile", default="tiny")
    p.set_defaults(func=_index)

    p = sub.add_parser("experts", help="train the tiny modality experts (embedded profiles)")
    p.add_argument("--profile", default="tiny")
    p.add_argument("--models", nargs="+", help="registry names (default: the profile's models)")
    p.set_defaults(func=_experts)

    p = sub.add_parser("eval", help="evaluate one model on one split under one condition (resumable)")
    p.add_argument("--profile", default="tiny")
    p.add_argument("--model", required=True)
    p.add_argument("--condition", required=True, choices=("audio", "silent_video", "sounded_video"))
    p.add_argument("--split", required=True, choices=("analysis", "finetune", "test", "pretrain"))
    p.add_argument("--mode", default="letters", choices=("letters", "generate"))
    p.add_argument("--run", help="output folder name (default: the model name)")
    p.set_defaults(func=_eval)

    p = sub.add_parser("study", help="run the study's notebooks with papermill")
    p.add_argument("--profile", default="tiny")
    p.add_argument("--only", nargs="+", help="notebook names to run (default: all, in order)")
    p.set_defaults(func=_study)

    p = sub.add_parser("book", help="build the Jupyter Book from the executed notebooks")
    p.add_argument("--profile", default="tiny", help="(informational: the book shows the last study run)")
    p.add_argument("--lenient", action="store_true", help="do not turn warnings into errors")
    p.set_defaults(func=_book)

    args = parser.parse_args(argv)
    try:
        args.func(args)
    except ConfigError as exc:
        print(f"xmd: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc


if __name__ == "__main__":
    main()
