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


def _study(args: argparse.Namespace) -> None:
    from .runner import STUDY_NOTEBOOKS, run_study
    from .study import ensure_world

    profile = load_profile(args.profile)
    ensure_world(profile)  # before the notebooks, so its progress bar shows here
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
