"""The `xmd` command: build the world, index the clips, run the study, build the book.

Exit status: 0 done; 2 a usage error (an unknown name or a wrong combination, checked by
`cli_checks` before any work starts, or a bad profile); 1 a failure while working (bad input
data, a missing result, ...). Either prints one line naming what is wrong; `--debug` shows the
traceback of a failure instead.
"""

from __future__ import annotations

import argparse
import json
import sys

from .cli_checks import UsageError, check_args
from .config import ConfigError, load_profile
from .vocabulary import CONDITIONS, EVAL_SPLITS, MODES, RECIPE_NAMES, run_for


def _world(args: argparse.Namespace) -> None:
    from .world import build_world

    profile = load_profile(args.profile)
    if profile.data.source != "world":
        raise UsageError(f"profile {profile.name!r} reads VGGSound ({profile.data.index_csv}); it has no embedded world")
    paths = build_world(profile, workers=args.workers)
    print(f"world ready: {paths.root}")


def _index(args: argparse.Namespace) -> None:
    from .study import prepare, split_summary

    inputs = prepare(load_profile(args.profile))
    print(split_summary(inputs.clips).to_string())
    print(f"dropped clips: {len(inputs.dropped)} (report: results/<profile>/dropped_clips.csv)")


def _experts(args: argparse.Namespace) -> None:
    from .checkpoints import ensure_models
    from .study import ensure_world

    profile = load_profile(args.profile)
    ensure_world(profile)
    ensure_models(profile, tuple(args.models) if args.models else None, jobs=args.jobs)


def _eval(args: argparse.Namespace) -> None:
    # Runs as it is under `accelerate launch` (README "Scaling out"): data parallel over shards.
    from .checkpoints import ensure_models
    from .evaluate import SHARD_SIZE, evaluate, load_model_here, load_record, process_state
    from .study import prepare

    profile = load_profile(args.profile)
    state = process_state()
    with state.main_process_first():  # the others then find the tables and checkpoints stored
        inputs = prepare(profile, progress=state.is_main_process)
        ensure_models(profile, (args.model,), progress=state.is_main_process)
    adapter = load_model_here(args.model, profile)
    run = args.run or run_for(args.model, args.mode)
    clips = inputs.split(args.split).sort_values("clip")
    if args.mode == "generate":  # the subset `xmd study` answers by generation, so it finds this run
        clips = clips.head(profile.models.generate_clips)
    evaluate(adapter, profile, clips, args.condition, args.split, run=run, mode=args.mode, shard_size=args.shard_size or SHARD_SIZE)
    if state.is_main_process:
        record = load_record(profile, run, args.split, args.condition)
        print(json.dumps({k: record[k] for k in ("run", "split", "condition", "clips", "errors", "accuracy", "timings")}, indent=1))


def _distill(args: argparse.Namespace) -> None:
    # Runs as it is under `accelerate launch` (README "Scaling out"): data parallel, same effective batch.
    from .distill import distill, evaluate_distilled
    from .evaluate import process_state
    from .switch import train_switch

    profile = load_profile(args.profile)
    state = process_state()
    if args.recipe != "ground-truth":
        with state.main_process_first():  # the others then find the switch trained
            train_switch(profile, teacher=args.teacher, student=args.student, progress=state.is_main_process)
    folder = distill(profile, args.teacher, args.student, args.recipe, tower_cache=not args.no_tower_cache)
    print(f"adapter: {folder}")
    if args.evaluate:
        for split, frame in evaluate_distilled(profile, args.teacher, args.student, args.recipe).items():
            print(f"{split}: accuracy {frame['correct'].mean():.3f} on {len(frame)} clips")


def _study(args: argparse.Namespace) -> None:
    from . import runner
    from .stages import StageClock, format_table
    from .study_pool import run_study_stages

    profile = load_profile(args.profile)
    clock = StageClock(profile)
    # the long stages run here, with progress bars; the notebooks then find their results
    run_study_stages(profile, clock, jobs=args.jobs)
    for name in tuple(args.only) if args.only else runner.STUDY_NOTEBOOKS:
        with clock.stage(f"notebook {name}"):
            runner.run_notebook(name, profile)
    print(f"stage times (stored in {clock.write()}):\n{format_table(clock.record())}")


def _book(args: argparse.Namespace) -> None:
    from .runner import build_book

    index = build_book(load_profile(args.profile), strict=not args.lenient)
    print(f"book: {index}")
    if args.check:
        from .book_check import browser_available, check_book

        why = browser_available()
        if why:
            print(f"browser check skipped: {why}")
            return
        problems, pages = check_book(index.parent, screenshots=args.screenshots)
        for problem in problems:
            print(f"  {problem}")
        if problems:
            raise RuntimeError(f"the browser check found {len(problems)} problem(s) in {pages} pages of {index.parent}")
        print(f"browser check: {pages} pages, no console error, every image, widget and clip loaded")


def build_parser() -> argparse.ArgumentParser:
    """The `xmd` command line: one subcommand per stage, and the study and the book."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the traceback of a failure")
    parser = argparse.ArgumentParser(prog="xmd", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("world", parents=[common], help="build the embedded world of a profile")
    p.add_argument("--profile", default="tiny")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.set_defaults(func=_world)

    p = sub.add_parser("index", parents=[common], help="index, probe and split the clips; write the question table")
    p.add_argument("--profile", default="tiny")
    p.set_defaults(func=_index)

    p = sub.add_parser("experts", parents=[common], help="train the tiny modality experts (embedded profiles)")
    p.add_argument("--profile", default="tiny")
    p.add_argument("--models", nargs="+", help="registry names (default: the profile's models)")
    p.add_argument("--jobs", type=int, default=None, help="experts trained at once, one process each (default: one per core)")
    p.set_defaults(func=_experts)

    p = sub.add_parser("eval", parents=[common], help="evaluate one model on one split under one condition (resumable)")
    p.add_argument("--profile", default="tiny")
    p.add_argument("--model", required=True)
    p.add_argument("--condition", required=True, choices=CONDITIONS)
    p.add_argument("--split", required=True, choices=EVAL_SPLITS)
    p.add_argument("--mode", default="letters", choices=MODES)
    p.add_argument("--run", help="output folder name (default: the model name)")
    p.add_argument("--shard-size", type=int, default=None, help="clips per shard, the unit of resuming and of work per process (default: 256)")
    p.set_defaults(func=_eval)

    p = sub.add_parser("distill", parents=[common], help="distil a teacher into a student with LoRA (trains the switch first)")
    p.add_argument("--profile", default="tiny")
    p.add_argument("--teacher", default="qwen2-vl")
    p.add_argument("--student", default="qwen2-audio")
    p.add_argument("--recipe", default="teacher-labels", choices=RECIPE_NAMES)
    p.add_argument("--no-tower-cache", action="store_true", help="recompute the frozen towers every step (slower; same result)")
    p.add_argument("--evaluate", action="store_true", help="then evaluate the student on the analysis, test and unseen splits")
    p.set_defaults(func=_distill)

    p = sub.add_parser("study", parents=[common], help="run the study's notebooks with papermill")
    p.add_argument("--profile", default="tiny")
    p.add_argument("--only", nargs="+", help="notebook names to run (default: all, in order)")
    p.add_argument("--jobs", type=int, default=None, help="tasks run at once, one process each (default: one per core)")
    p.set_defaults(func=_study)

    p = sub.add_parser("book", parents=[common], help="build the Jupyter Book from the executed notebooks")
    p.add_argument("--profile", default="tiny", help="whose stage times the appendix shows (the book shows the last study run)")
    p.add_argument("--lenient", action="store_true", help="do not turn warnings into errors")
    p.add_argument("--check", action="store_true", help="then open every page in headless Chromium (xmd_core.book_check)")
    p.add_argument("--screenshots", metavar="DIR", help="with --check: save each explore selector's page before and after switching, as PNGs in DIR")
    p.set_defaults(func=_book)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        check_args(args)
        args.func(args)
    except (ConfigError, UsageError) as exc:
        print(f"xmd: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    except Exception as exc:
        if args.debug:
            raise
        print(f"xmd: error: {_message(exc)} (--debug shows the traceback)", file=sys.stderr)
        raise SystemExit(1) from exc


def _message(exc: Exception) -> str:
    """One line: the exception's own text (a KeyError's without its quotes), or its type."""
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    return " ".join(str(text).split()) or type(exc).__name__


if __name__ == "__main__":
    main()
