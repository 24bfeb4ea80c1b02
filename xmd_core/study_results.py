"""Reading the study's results for the chapters, never computing them.

`xmd study` runs every stage (world, experts, evaluations, switches, distillation) and then the
notebooks; the notebooks only read what the stages wrote. A result that is missing, unfinished
or of other weights is a :class:`MissingResult` that names the file and the command that writes
it, so re-executing a chapter never starts a long job without saying so.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .config import Profile, profile_argument
from .evaluate import RUN_RECORD, load_record, run_dir, status_row
from .study import StudyInputs
from .vocabulary import ABLATION_DIRECTION, DEFAULT_RECIPE, DIRECTIONS, RECIPE_NAMES, run_for

#: Which stage of `xmd study`, or chapter, writes each kind of result file.
WRITERS = {"inputs": "the index stage of `xmd study` (or `xmd index`)", "predictions": "the evaluation stage of `xmd study`", "switch": "the switch stage of `xmd study`",
           "adapter": "the distillation stage of `xmd study`", "trials": "the human-study chapter (02_human_study)",
           "world": "the world stage of `xmd study`"}


class MissingResult(FileNotFoundError):
    """A result file a chapter needs is absent, unfinished or stale."""

    def __init__(self, path: Path, writer: str, why: str = ""):
        super().__init__(f"missing {path}{f' ({why})' if why else ''}, written by {writer}")
        self.path = path


def study_command(profile: Profile) -> str:
    return f"xmd study --profile {profile_argument(profile)}"


def need(path: Path, writer: str, profile: Profile | None = None) -> Path:
    """`path` if it is a file, else `MissingResult` (naming the command when `profile` is given)."""
    if not Path(path).is_file():
        raise MissingResult(path, WRITERS[writer] + (f": run `{study_command(profile)}`" if profile else ""))
    return Path(path)


def need_run(profile: Profile, run: str, split: str, condition: str) -> dict:
    """The record of a finished prediction run (its `run.json` says done)."""
    path = need(run_dir(profile, run, split, condition) / RUN_RECORD, "predictions", profile)
    record = load_record(profile, run, split, condition)
    if record.get("status") != "done":
        raise MissingResult(path, f"{WRITERS['predictions']}: run `{study_command(profile)}`", "the run did not finish")
    return record


def load_inputs(profile: Profile) -> StudyInputs:
    """The shared tables `study.prepare` stored (clips with their splits, dropped clips, questions,
    the option pool's classes), read back without indexing or probing anything."""
    from . import data
    from .mcq import read_questions

    out = profile.results_dir
    clips = pd.read_parquet(need(out / "clips.parquet", "inputs", profile))
    dropped = pd.read_csv(need(out / "dropped_clips.csv", "inputs", profile), dtype=str, keep_default_na=False)
    tables = [read_questions(need(out / "questions.parquet", "inputs", profile))]
    if (clips["split"] == "unseen").any():
        tables.append(read_questions(need(out / "questions_unseen.parquet", "inputs", profile)))
    classes = data.read_stat(data.index_sources(profile).stat_csv)
    return StudyInputs(clips=clips, dropped=dropped, questions=pd.concat(tables, ignore_index=True), classes=classes)


def evaluation_status(profile: Profile, splits: tuple[str, ...] = ("analysis", "test"), mode: str = "letters") -> pd.DataFrame:
    """One row per (model, split, condition) of the profile's models with its run record's
    figures (the columns `evaluate.evaluate_models` returns); a model that cannot run in this
    profile is listed as "not run: <why>". A missing, unfinished or stale run is `MissingResult`."""
    from .models.registry import checkpoint_path, get_spec, model_identity, unavailable_reason

    rows = []
    for name in profile.models.evaluate:
        spec = get_spec(name)
        reason = unavailable_reason(spec, profile)
        if reason:
            rows += [{"model": name, "split": s, "condition": c, "status": f"not run: {reason}"} for s in splits for c in spec.conditions]
            continue
        weights = model_identity(checkpoint_path(name, profile))
        for split in splits:
            for condition in spec.conditions:
                record = need_run(profile, run_for(name, mode), split, condition)
                if record["key"].get("model") != weights:
                    raise MissingResult(run_dir(profile, run_for(name, mode), split, condition), f"`{study_command(profile)}`",
                                        "answers of other weights than the current checkpoint's")
                rows.append(status_row(name, split, condition, record))
    return pd.DataFrame(rows)


def require_switches(profile: Profile, directions=DIRECTIONS) -> None:
    """Both switches trained (their `metrics.json`, written last)."""
    from .switch import switch_dir

    for teacher, student in directions:
        need(switch_dir(profile, teacher, student) / "metrics.json", "switch", profile)


def distillation_summary(profile: Profile) -> pd.DataFrame:
    """One row per trained adapter (both directions' default students, the ablations of the first
    direction), from their `distill.json` (written by `distill.run_distillation`)."""
    from .distill import adapter_dir

    rows = []
    for teacher, student in DIRECTIONS:
        for recipe in RECIPE_NAMES if (teacher, student) == ABLATION_DIRECTION else (DEFAULT_RECIPE,):
            info = json.loads(need(adapter_dir(profile, teacher, student, recipe) / "distill.json", "adapter", profile).read_text())
            rows.append({"teacher": teacher, "student": student, "recipe": recipe, "optimizer steps": info["optimizer_steps"],
                         "clips": info["training_set"]["clips"] - info["training_set"]["left_out"],
                         "switch open": info["training_set"]["switch_open"], "training s": info["seconds"]["training"],
                         "steps/s": info["steps_per_second"]})
    return pd.DataFrame(rows)
