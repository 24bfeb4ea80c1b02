"""Checks of an `xmd` command line, made before any work starts.

A name the study does not know (a model, a notebook, a run name that would leave the results
folder) or a combination it cannot run (a condition the model does not take, a teacher that is
its own student, two models of one modality) is a `UsageError`: the CLI prints one line that
names the value and what is allowed, and exits with status 2. Checks that need the profile (its
data, its checkpoints) happen in the stages themselves.
"""

from __future__ import annotations

import argparse


class UsageError(ValueError):
    """A command line names something unknown, or combines what cannot go together."""


def check_run_name(name: str) -> str:
    """`name` if it is one safe folder name (`run_plan.check_run_name`), else `UsageError`."""
    from .run_plan import check_run_name as check

    try:
        return check(name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def check_model(name: str, flag: str = "--model"):
    """The registry's spec of `name`, or a `UsageError` that lists the registered names."""
    from .models.registry import REGISTRY

    if name not in REGISTRY:
        raise UsageError(f"{flag}: unknown model {name!r}; registered: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def check_at_least_one(value: int | None, flag: str) -> None:
    if value is not None and value < 1:
        raise UsageError(f"{flag} must be at least 1 (got {value})")


def _eval(args: argparse.Namespace) -> None:
    spec = check_model(args.model)
    if args.condition not in spec.conditions:
        raise UsageError(f"--condition {args.condition}: {args.model} takes {', '.join(spec.conditions)}")
    if args.run is not None:
        check_run_name(args.run)
    check_at_least_one(args.shard_size, "--shard-size")


def _distill(args: argparse.Namespace) -> None:
    teacher, student = check_model(args.teacher, "--teacher"), check_model(args.student, "--student")
    if args.teacher == args.student:
        raise UsageError(f"--teacher and --student are both {args.teacher!r}: distillation needs two models")
    if teacher.conditions[0] == student.conditions[0]:
        raise UsageError(
            f"{args.teacher} and {args.student} both take {teacher.conditions[0]}: cross-modal distillation needs a teacher of the other modality"
        )


def _experts(args: argparse.Namespace) -> None:
    for name in args.models or ():
        if not check_model(name, "--models").tiny:
            raise UsageError(f"--models: {name} has no tiny version to train (its code is not in transformers)")
    check_at_least_one(args.jobs, "--jobs")


def _study(args: argparse.Namespace) -> None:
    from .runner import STUDY_NOTEBOOKS

    unknown = [name for name in args.only or () if name not in STUDY_NOTEBOOKS]
    if unknown:
        raise UsageError(f"--only: unknown notebook(s) {', '.join(map(repr, unknown))}; the study's notebooks: {', '.join(STUDY_NOTEBOOKS)}")
    check_at_least_one(args.jobs, "--jobs")


def _world(args: argparse.Namespace) -> None:
    check_at_least_one(args.workers, "--workers")


def _book(args: argparse.Namespace) -> None:
    if args.screenshots and not args.check:
        raise UsageError("--screenshots needs --check: the screenshots are taken by the browser check")


CHECKS = {"eval": _eval, "distill": _distill, "experts": _experts, "study": _study, "world": _world, "book": _book}


def check_args(args: argparse.Namespace) -> None:
    """Raise `UsageError` for the first thing wrong with a parsed command line."""
    check = CHECKS.get(args.command)
    if check is not None:
        check(args)
