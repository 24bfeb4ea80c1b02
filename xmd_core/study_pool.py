"""The long stages of `xmd study` for the embedded profiles, side by side on the CPU cores.

Three batches of independent tasks (`workers.run_tasks`: one process and one torch thread per
task, as many at once as there are cores), each batch waiting for the one before:

1. per model: train its tiny expert, then every evaluation of that model alone (letters on the
   analysis and test splits, generation on the analysis subset and, for the distillation
   directions' models, the unseen and finetune splits); and the switch's tagger;
2. the two switches;
3. the distillation recipes (both directions' defaults first, then the ablations), each trained
   and then evaluated.

The study's shared tables (`study.StudyInputs`: clips, questions, classes) are built once, by
the main process in the world stage, and sent with every task. No two tasks of a batch write the same files: every model has its own evaluation runs, every
switch and adapter its own folder, and the frozen-tower cache is written one file per clip,
atomically. Every task is an idempotent stage of the study, so after the batches the usual
sequential calls (`evaluate_models`, `run_distillation`) find everything stored and only
assemble their tables; a killed run redoes only what is missing. Hub checkpoints (the full
profile, on GPUs) skip all this: their stages run in turn as before.
"""

from __future__ import annotations

from .config import Profile
from .vocabulary import ABLATION_DIRECTION, DIRECTIONS
from .workers import Task, run_tasks



def model_work(name: str, profile: Profile, inputs=None) -> str:
    """Train one tiny expert, then answer every question the study asks of it alone (`inputs`:
    the study's shared tables, sent by the main process; built here when not given)."""
    from .distill import answers_on, finetune_clips
    from .evaluate import evaluate_models
    from .expert_pool import train_in_worker
    from .study import prepare

    train_in_worker(name, profile)
    inputs = inputs if inputs is not None else prepare(profile, progress=False)
    evaluate_models(profile, names=(name,), progress=False, inputs=inputs)
    evaluate_models(profile, names=(name,), splits=("analysis",), mode="generate", progress=False, inputs=inputs)
    if any(name in direction for direction in DIRECTIONS):  # what the switch and distillation read
        unseen = inputs.split("unseen")
        if not unseen.empty:
            answers_on(profile, name, unseen, "unseen", progress=False)
        answers_on(profile, name, finetune_clips(profile, inputs), "finetune", progress=False)
    return name


def tagger_work(profile: Profile, inputs=None) -> str:
    from .switch_tagger import pretrain_tagger

    return str(pretrain_tagger(profile, progress=False, threads=1, inputs=inputs))


def switch_work(profile: Profile, teacher: str, student: str, inputs=None) -> str:
    from .switch import train_switch

    return str(train_switch(profile, teacher=teacher, student=student, progress=False, threads=1, inputs=inputs))


def recipe_work(profile: Profile, teacher: str, student: str, recipe: str, inputs=None) -> str:
    from .distill import distill, evaluate_distilled

    folder = distill(profile, teacher, student, recipe, progress=False, inputs=inputs)
    evaluate_distilled(profile, teacher, student, recipe, progress=False, inputs=inputs)
    return str(folder)


def runs_side_by_side(profile: Profile) -> bool:
    """Only the embedded profiles' tiny models on the CPU: a hub checkpoint wants the GPU alone."""
    return profile.models.kind == "tiny" and profile.models.device_map in ("", "cpu")


def model_tasks(profile: Profile, inputs=None) -> list[Task]:
    from .expert_pool import slowest_first
    from .models.registry import REGISTRY

    # a model's task is mostly its training: the slowest first
    names = slowest_first(n for n in profile.models.evaluate if REGISTRY[n].tiny)
    tasks = [Task(f"model {n}", model_work, (n, profile, inputs)) for n in names]
    if not profile.switch.pretrained and profile.switch.tagger_epochs > 0:
        tasks.insert(min(2, len(tasks)), Task("tagger", tagger_work, (profile, inputs)))
    return tasks


def recipe_tasks(profile: Profile, inputs=None) -> list[Task]:
    from .distill import DEFAULT_RECIPE, RECIPES

    tasks = [Task(f"distill {t}->{s} {DEFAULT_RECIPE}", recipe_work, (profile, t, s, DEFAULT_RECIPE, inputs)) for t, s in DIRECTIONS]
    teacher, student = ABLATION_DIRECTION
    tasks += [Task(f"distill {teacher}->{student} {r}", recipe_work, (profile, teacher, student, r, inputs)) for r in RECIPES if r != DEFAULT_RECIPE]
    return tasks


def switch_tasks(profile: Profile, inputs=None) -> list[Task]:
    return [Task(f"switch {t}->{s}", switch_work, (profile, t, s, inputs)) for t, s in DIRECTIONS]


def run_study_stages(profile: Profile, clock, jobs: int | None = None) -> None:
    """Every stage of `xmd study` before the notebooks, each timed by `clock` (`stages`).

    Side by side (:func:`runs_side_by_side`), the three batches of the module doc do the work
    and the sequential stages after them only read it back; otherwise the sequential stages do
    it all, in turn."""
    from .distill import run_distillation
    from .study_results import distillation_summary
    from .evaluate import evaluate_models
    from .checkpoints import ensure_models
    from .study import prepare

    side = runs_side_by_side(profile)
    with clock.stage("world"):
        inputs = prepare(profile)  # builds the world first; every stage of this process reads these tables
    with clock.stage("experts and their evaluations, side by side" if side else "experts"):
        if side:
            run_tasks(model_tasks(profile, inputs), jobs=jobs, desc="experts and evaluations")  # the tables travel with each task
        ensure_models(profile, jobs=jobs)
    with clock.stage("evaluation (letters)"):
        print(evaluate_models(profile, inputs=inputs).to_string())
    with clock.stage("evaluation (generation)"):
        print(evaluate_models(profile, splits=("analysis",), mode="generate", inputs=inputs).to_string())
    if side:
        with clock.stage("switches, side by side"):
            run_tasks(switch_tasks(profile, inputs), jobs=jobs, desc="switches")
        with clock.stage("distillation and ablations, side by side"):
            run_tasks(recipe_tasks(profile, inputs), jobs=jobs, desc="distillation")
    with clock.stage("switches, distillation, ablations"):
        run_distillation(profile, inputs=inputs)
        print(distillation_summary(profile).to_string())
