"""Run a model on a split under a condition; predictions in resumable Parquet shards.

Layout: `results/<profile>/predictions/<run>/<split>/<condition>/shard-00000.parquet ...` and a
`run.json` beside them. An evaluation is a part-wise step of the artifact store (`store`): its
record, holding its key (`evaluation_key`: layout, weights, each shard's questions), is written
"running" before the first shard and "done" after the last; a shard is written atomically once
all its clips are answered. So a killed run (even `kill -9`) resumes at the first missing shard
and ends with the same predictions as an uninterrupted run. A clip that cannot be decoded or answered becomes an error
row with its reason: never an empty or random answer.

Data parallel under Hugging Face `accelerate launch` (or `torchrun`): the shards still missing
are dealt out to the processes (the k-th missing shard to process k mod N), each process loads
its own copy of the model on its own device and writes its own shards; the main process writes
`run.json` ("running" before, "done" once every process has finished). Shards are cut from the
clips in clip order whatever N is, so the merged predictions are those of one process, and a
run started with N processes resumes with any other N. One process without a launcher runs as
before. See README "Scaling out".
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from . import store
from .atomic import write_atomically
from .config import REPO_ROOT, Profile
from .media import MediaCache, MediaError
from .mcq import LETTERS
from .models.adapters import Adapter, Sample
from .scoring import generate_answers, parse_letter, score_letters
from .run_plan import check_run_name, question_digests, shards_to_redo, stray_shards, unreadable
from .workers import die_with_parent
from .vocabulary import MODES, run_for

PREDICTION_COLUMNS = [
    "clip", "label", "condition", "options", "answer", "letter_logits", "predicted", "correct", "seconds", "error",
]  # fmt: skip
SHARD_SIZE = 256

#: A run's record: its key, written before its first shard, and its figures once done.
RUN_RECORD = "run.json"


@dataclass(frozen=True)
class _Item:
    """What the data loader yields: a decoded sample, or the reason it could not be decoded."""

    sample: Sample | None
    row: dict
    error: str = ""


class ClipMedia(Dataset):
    """Decodes the media a condition needs, through the disk cache, in loader workers."""

    def __init__(self, rows: pd.DataFrame, condition: str, profile: Profile):
        self.rows = rows.to_dict("records")
        self.condition = condition
        self.cache = MediaCache(profile.media_cache_dir)
        self.media = profile.media

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> _Item:
        row = self.rows[i]
        try:
            return _Item(Sample.decoded(self.cache, self.media, row["clip"], row["prompt"], row["path"], self.condition), row)
        except MediaError as exc:
            return _Item(None, row, str(exc))


def _batches(dataset: ClipMedia, batch_size: int, workers: int, batch_sampler: list[list[int]] | None = None):
    # workers decode the next batches while the model computes this one; they die with the process
    common = {"num_workers": workers, "collate_fn": list, "prefetch_factor": 4 if workers else None, "worker_init_fn": die_with_parent}
    if batch_sampler is not None:
        return DataLoader(dataset, batch_sampler=batch_sampler, **common)
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, persistent_workers=False, **common)


def shard_batches(shards: list[int], n_clips: int, shard_size: int, batch_size: int) -> list[tuple[int, list[int]]]:
    """(shard, row indices) of every batch of the given shards, in order; no batch crosses a
    shard, so one data loader serves them all and each shard is written when its last batch is in."""
    out = []
    for s in shards:
        rows = list(range(s * shard_size, min((s + 1) * shard_size, n_clips)))
        out += [(s, rows[i : i + batch_size]) for i in range(0, len(rows), batch_size)]
    return out


def _answer(adapter: Adapter, samples: list[Sample], condition: str, mode: str) -> tuple[np.ndarray, list[str | None]]:
    """Letter logits (NaN in generation mode) and the predicted letters of a batch."""
    n_options = 10
    if mode == "letters":
        logits = score_letters(adapter, samples, condition)
        return logits, [LETTERS[i] for i in logits[:, :n_options].argmax(axis=1)]
    texts = generate_answers(adapter, samples, condition)
    return np.full((len(samples), n_options), np.nan, dtype=np.float32), [parse_letter(t, n_options) for t in texts]


def _rows_for(items: list[_Item], logits: np.ndarray | None, letters: list, seconds: float, errors: list[str]) -> list[dict]:
    out = []
    for k, item in enumerate(items):
        row = item.row
        error = errors[k]
        predicted = None if error else letters[k]
        out.append(
            {
                "clip": row["clip"],
                "label": row["label"],
                "condition": None,  # filled by the caller
                "options": list(row["options"]),
                "answer": row["answer"],
                "letter_logits": (logits[k] if logits is not None and not error else np.full(10, np.nan)).astype(np.float32).tolist(),
                "predicted": predicted,
                "correct": bool(predicted == row["answer"]),
                "seconds": seconds,
                "error": error,
            }
        )
    return out


def _answer_items(adapter: Adapter, items: list[_Item], condition: str, mode: str) -> list[dict]:
    """Answer a batch; a batch that fails is retried clip by clip so one bad clip is isolated."""
    start = time.perf_counter()
    good = [i for i, item in enumerate(items) if not item.error]
    errors = [item.error for item in items]
    logits = np.full((len(items), 10), np.nan, dtype=np.float32)
    letters: list = [None] * len(items)
    if good:
        try:
            batch_logits, batch_letters = _answer(adapter, [items[i].sample for i in good], condition, mode)
            for j, i in enumerate(good):
                logits[i], letters[i] = batch_logits[j], batch_letters[j]
        except (RuntimeError, ValueError) as exc:
            if len(good) == 1:
                errors[good[0]] = f"model failed on {items[good[0]].row['clip']}: {type(exc).__name__}: {exc}"
            else:
                for i in good:
                    row = _answer_items(adapter, [items[i]], condition, mode)[0]
                    logits[i] = row["letter_logits"]
                    letters[i], errors[i] = row["predicted"], row["error"]
    seconds = (time.perf_counter() - start) / max(len(items), 1)
    return _rows_for(items, logits, letters, seconds, errors)


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    return out.stdout.strip() or "unknown (not a git checkout)"


def _versions() -> dict[str, str]:
    import peft
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__}


def run_dir(profile: Profile, run: str, split: str, condition: str) -> Path:
    return profile.results_dir / "predictions" / check_run_name(run) / split / condition


# A process waits at a barrier for the slowest one (one shard of a 7B model, or a model loading
# on another GPU): longer than torch's default of 10 (NCCL) or 30 (gloo) minutes is allowed.
BARRIER_TIMEOUT = timedelta(hours=4)


def process_state():
    """accelerate's `PartialState`: rank, world size and device of this process.

    Without a launcher it is one process (rank 0, `num_processes == 1`) and nothing changes.
    Under `accelerate launch` / `torchrun` it joins the process group: NCCL on GPUs; gloo on a
    machine without CUDA or when `ACCELERATE_USE_CPU=1` (accelerate's own CPU launch needs MPI,
    so several CPU processes come from `accelerate launch --multi_gpu` on a CPU-only machine).
    """
    from accelerate import PartialState
    from accelerate.utils import InitProcessGroupKwargs

    if PartialState._shared_state:  # already set up in this process (e.g. by an Accelerator)
        return PartialState()
    cpu = os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes") or not torch.cuda.is_available()
    return PartialState(cpu=cpu, **InitProcessGroupKwargs(timeout=BARRIER_TIMEOUT).to_kwargs())


def load_model_here(name: str, profile: Profile, **kwargs) -> Adapter:
    """`load_model` for this process: with several processes, a whole copy on its own device.

    (With one process the profile's `device_map` is kept: "auto" spreads one copy over the
    visible GPUs, "" keeps it on the CPU.)
    """
    from .models.registry import load_model

    state = process_state()
    if state.num_processes > 1 and state.device.type != "cpu":
        profile = replace(profile, models=replace(profile.models, device_map=str(state.device)))
    if not state.is_main_process:  # one set of loading bars, the main process's
        import transformers

        transformers.utils.logging.disable_progress_bar()
    return load_model(name, profile, **kwargs)


def _clips_in(shards: list[int], n_clips: int, shard_size: int) -> int:
    return sum(min(shard_size, n_clips - s * shard_size) for s in shards)


def evaluate(
    adapter: Adapter,
    profile: Profile,
    clips: pd.DataFrame,
    condition: str,
    split: str,
    run: str | None = None,
    mode: str = "letters",
    shard_size: int = SHARD_SIZE,
    progress: bool = True,
    extra_record: dict | None = None,
) -> pd.DataFrame:
    """Answer every clip of `clips` (one split, joined to its questions); returns the predictions.

    `run` names the output folder (default: the model's registry name); `mode` is "letters"
    (letter scoring) or "generate" (greedy generation, then a parsed letter).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES} (got {mode!r})")
    adapter.check_condition(condition)
    if clips.empty:  # refused before anything is written: no record is left "running"
        raise ValueError(f"no clips to evaluate in split {split!r} ({condition}) for run {run or adapter.name!r}: the split is empty in this profile")
    state = process_state()
    rank, n_processes, main = state.process_index, state.num_processes, state.is_main_process
    run = run or adapter.name
    out = run_dir(profile, run, split, condition)
    out.mkdir(parents=True, exist_ok=True)
    clips = clips.sort_values("clip").reset_index(drop=True)  # shards must not depend on input order
    plan = evaluation_key(clips, shard_size, mode, getattr(adapter, "identity", adapter.name))
    if store.finished(out, RUN_RECORD, plan) and _shards_whole(out, plan):
        return load_predictions(profile, run, split, condition)  # finished: keep its record and timings
    previous = store.read_record(out, RUN_RECORD)  # an unreadable record counts as none
    todo, redo = _shards_to_answer(out, previous, plan, shard_size, report=main)
    state.wait_for_everyone()
    stray = stray_shards(out, (len(clips) + shard_size - 1) // shard_size)
    if redo or stray:
        if main:
            for path in [out / f"shard-{s:05d}.parquet" for s in redo] + stray:
                path.unlink(missing_ok=True)
        state.wait_for_everyone()  # no process writes a new shard before the old ones are gone
    if main:
        record = {**_run_facts(profile, adapter, run, split, condition, mode), "processes": n_processes, **(extra_record or {})}
        store.mark_running(out, RUN_RECORD, plan, record)

    mine = todo[rank::n_processes]  # balanced on a resumed run too
    started = time.perf_counter()
    desc = f"{run} {split}/{condition}" + (f" [process 0 of {n_processes}]" if n_processes > 1 else "")
    bar = tqdm(total=_clips_in(mine, len(clips), shard_size) if n_processes > 1 else len(clips), desc=desc, disable=not (progress and main), unit="clip")
    if n_processes == 1:
        bar.update(len(clips) - _clips_in(todo, len(clips), shard_size))
    wait, compute = _answer_shards(adapter, profile, clips, condition, mode, mine, shard_size, out, bar)
    bar.close()

    spent = [(wait, compute, _clips_in(mine, len(clips), shard_size))]
    if n_processes > 1:  # the main process records what every process did
        from accelerate.utils import gather_object

        spent = gather_object(spent)
    state.wait_for_everyone()  # every shard is on disk
    if main:
        predictions = load_predictions(profile, run, split, condition)
        record.update(_outcome(predictions, spent, time.perf_counter() - started))
        store.mark_done(out, RUN_RECORD, plan, record)  # only the main process writes it
    state.wait_for_everyone()  # the record is written: every process may read it now
    return predictions if main else load_predictions(profile, run, split, condition)


def evaluation_key(clips: pd.DataFrame, shard_size: int, mode: str, weights: str) -> dict:
    """An evaluation's key (`run_plan` module): its layout, the weights and each shard's questions
    (`clips` in clip order). Retrained weights, a relabelled clip or a rebuilt question must not
    reuse old answers."""
    return {"clips": len(clips), "shard_size": shard_size, "first": clips["clip"].iloc[0] if len(clips) else "", "mode": mode,
            "model": weights, "questions": question_digests(clips, shard_size)}


def _shards_whole(out: Path, plan: dict) -> bool:
    """Whether every shard of `plan` is in `out` and reads back (a finished record is not enough
    once a shard was removed or damaged)."""
    n_shards = (plan["clips"] + plan["shard_size"] - 1) // plan["shard_size"]
    paths = [out / f"shard-{s:05d}.parquet" for s in range(n_shards)]
    return all(p.is_file() and not unreadable(p) for p in paths)


def _run_facts(profile: Profile, adapter: Adapter, run: str, split: str, condition: str, mode: str) -> dict:
    """What a run's record says of where its answers come from."""
    return {
        "profile": profile.name,
        "config_hash": profile.config_hash(),
        "model": adapter.name,
        "run": run,
        "split": split,
        "condition": condition,
        "mode": mode,
        "git_commit": _git_commit(),
        "versions": _versions(),
        "seeds": {"mcq": profile.mcq.seed, "splits": profile.splits.seed},
    }


def _outcome(predictions: pd.DataFrame, spent: list[tuple[float, float, int]], wall_s: float) -> dict:
    """A finished run's counts and timings (`spent`: media wait, model time and clips answered,
    per process)."""
    return {
        "clips": len(predictions),
        "errors": int((predictions["error"] != "").sum()),
        "accuracy": float(predictions["correct"].mean()) if len(predictions) else float("nan"),
        # wall time of the whole run; media wait and model time summed over the processes
        "timings": {
            "wall_s": round(wall_s, 2),
            "media_wait_s": round(sum(w for w, _, _ in spent), 2),
            "model_s": round(sum(c for _, c, _ in spent), 2),
        },
        "clips_per_process": [n for _, _, n in spent],  # answered in this call (resumed shards excluded)
    }


def _shards_to_answer(out: Path, previous: dict | None, plan: dict, shard_size: int, report: bool) -> tuple[list[int], list[int]]:
    """The shards still to answer, and those of them whose stored file must go first (another
    plan's or layout's, unreadable, or without a readable record holding a key: a run writes its record
    before its first shard, so such shards are of unknown origin). Every process reads the folder
    before any of them writes (the barrier in `evaluate`), so all see the same shards and take
    the same decisions."""
    n_shards = (plan["clips"] + shard_size - 1) // shard_size
    shard_path = [out / f"shard-{s:05d}.parquet" for s in range(n_shards)]
    broken = {s: why for s in range(n_shards) if shard_path[s].is_file() and (why := unreadable(shard_path[s]))}
    stored_plan = (previous or {}).get("key")
    redo, why = shards_to_redo(stored_plan, plan, n_shards)
    if stored_plan is None and any(p.is_file() for p in shard_path):
        redo, why = list(range(n_shards)), f"no readable {RUN_RECORD} with a key says what answered its shards"
    redo = sorted(set(redo) | set(broken))
    todo = [s for s in range(n_shards) if s in redo or not shard_path[s].is_file()]
    if report and redo:
        for s, reason in broken.items():
            tqdm.write(f"{shard_path[s]}: cannot be read ({reason}); answering its clips again")
        if why:
            tqdm.write(f"{out}: {why}; answering them again")
    return todo, redo


def _answer_shards(adapter: Adapter, profile: Profile, clips: pd.DataFrame, condition: str, mode: str, shards: list[int], shard_size: int, out: Path, bar) -> tuple[float, float]:
    """Answer this process's `shards`, each written atomically once its last batch is answered;
    returns the seconds spent waiting for media and in the model."""
    # one loader for all of this process's shards: its workers keep decoding across shard ends
    plan_batches = shard_batches(shards, len(clips), shard_size, profile.models.batch_size)
    workers = min(profile.media.workers, len(plan_batches))
    loader = _batches(ClipMedia(clips, condition, profile), profile.models.batch_size, workers, [rows for _, rows in plan_batches])
    answered: list[dict] = []
    wait = compute = 0.0
    tick = time.perf_counter()
    for k, ((s, _), items) in enumerate(zip(plan_batches, loader)):
        got = time.perf_counter()
        wait += got - tick
        answered += _answer_items(adapter, items, condition, mode)
        tick = time.perf_counter()
        compute += tick - got
        bar.update(len(items))
        if k + 1 == len(plan_batches) or plan_batches[k + 1][0] != s:  # the shard's last batch
            frame = pd.DataFrame(answered, columns=PREDICTION_COLUMNS).assign(condition=condition)
            write_atomically(out / f"shard-{s:05d}.parquet", frame.to_parquet)
            answered = []
    return wait, compute


def load_predictions(profile: Profile, run: str, split: str, condition: str) -> pd.DataFrame:
    """All shards of one run, split and condition, in clip order."""
    out = run_dir(profile, run, split, condition)
    shards = sorted(out.glob("shard-*.parquet"))
    if not shards:
        raise FileNotFoundError(f"no predictions in {out}")
    frame = pd.concat([pd.read_parquet(p) for p in shards], ignore_index=True)
    frame["letter_logits"] = frame["letter_logits"].map(lambda v: np.asarray(v, dtype=np.float32))
    return frame.assign(run=run, split=split)


def load_record(profile: Profile, run: str, split: str, condition: str) -> dict:
    """A run's record; a missing or unreadable one is an error that names the file."""
    folder = run_dir(profile, run, split, condition)
    record = store.read_record(folder, RUN_RECORD)
    if record is None:
        raise FileNotFoundError(f"{folder / RUN_RECORD}: missing or unreadable; evaluate the run again")
    return record


def model_answers(
    profile: Profile, name: str, clips: pd.DataFrame, split: str, condition: str, run: str | None = None,
    adapter_dir: str | Path | None = None, progress: bool = True,
) -> pd.DataFrame:
    """A registered model's answers on `clips`: read back, without loading the model, when a
    finished run holds exactly these clips answered by the same weights; else evaluated."""
    from .models.registry import checkpoint_path, model_identity

    run = run or name
    ordered = clips.sort_values("clip").reset_index(drop=True)
    plan = evaluation_key(ordered, SHARD_SIZE, "letters", model_identity(checkpoint_path(name, profile), adapter_dir))
    folder = run_dir(profile, run, split, condition)
    if store.finished(folder, RUN_RECORD, plan) and _shards_whole(folder, plan):
        return load_predictions(profile, run, split, condition)
    adapter = load_model_here(name, profile, adapter_dir=adapter_dir)
    return evaluate(adapter, profile, clips, condition, split, run=run, progress=progress)


def status_row(model: str, split: str, condition: str, record: dict) -> dict:
    """One row of the evaluation table: a run record's status, accuracy, errors and timings."""
    return {"model": model, "split": split, "condition": condition, "status": record["status"],
            "accuracy": record["accuracy"], "errors": record["errors"], **record["timings"]}


def evaluate_models(
    profile: Profile,
    names: tuple[str, ...] | None = None,
    splits: tuple[str, ...] = ("analysis", "test"),
    mode: str = "letters",
    progress: bool = True,
    inputs=None,
) -> pd.DataFrame:
    """Evaluate every model of the profile under each of its conditions on `splits`.

    Returns one row per (model, split, condition) with the run record's figures; models that
    cannot be loaded here (no tiny version, missing packages) are listed with the reason.
    `inputs`: the study's shared tables (`study.StudyInputs`), built here when not given.
    """
    from .models.registry import ModelUnavailable, get_spec
    from .checkpoints import ensure_models
    from .study import prepare

    state = process_state()
    progress = progress and state.is_main_process
    # Under a launcher the main process builds the shared tables (world, probe, questions,
    # experts) first; the others then find them stored.
    with state.main_process_first():
        inputs = inputs if inputs is not None else prepare(profile, progress=progress)
        ensure_models(profile, names, progress=progress)
    if not progress:  # quiet in notebooks: no checkpoint-loading bars in the book's pages
        import transformers

        transformers.utils.logging.disable_progress_bar()
    rows = []
    for name in names or profile.models.evaluate:
        spec = get_spec(name)
        try:
            adapter = load_model_here(name, profile)
        except ModelUnavailable as exc:
            rows += [{"model": name, "split": s, "condition": c, "status": f"not run: {exc}"} for s in splits for c in spec.conditions]
            continue
        for split in splits:
            for condition in spec.conditions:
                clips = inputs.split(split).sort_values("clip")
                if mode == "generate":  # generation is ~30x slower: a fixed subset suffices to compare
                    clips = clips.head(profile.models.generate_clips)
                run = run_for(name, mode)
                evaluate(adapter, profile, clips, condition, split, run=run, mode=mode, progress=progress)
                rows.append(status_row(name, split, condition, load_record(profile, run, split, condition)))
        del adapter
    return pd.DataFrame(rows)
