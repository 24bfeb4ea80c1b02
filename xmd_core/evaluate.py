"""Run a model on a split under a condition; predictions in resumable Parquet shards.

Layout: `results/<profile>/predictions/<run>/<split>/<condition>/shard-00000.parquet ...` and a
`run.json` beside them. A shard is written atomically once all its clips are answered, so a
killed run (even `kill -9`) resumes at the first missing shard and ends with the same
predictions as an uninterrupted run. A clip that cannot be decoded or answered becomes an error
row with its reason: never an empty or random answer.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .config import REPO_ROOT, Profile
from .media import MediaCache, MediaError
from .mcq import LETTERS
from .models.adapters import Adapter, Sample
from .scoring import generate_answers, parse_letter, score_letters

PREDICTION_COLUMNS = [
    "clip", "label", "condition", "options", "answer", "letter_logits", "predicted", "correct", "seconds", "error",
]  # fmt: skip
SHARD_SIZE = 256


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
        self.needs_audio = condition in ("audio", "sounded_video")
        self.needs_frames = condition in ("silent_video", "sounded_video")
        self.cache = MediaCache(profile.media_cache_dir)
        self.media = profile.media

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> _Item:
        row = self.rows[i]
        try:
            audio = self.cache.audio(row["path"], self.media.sample_rate) if self.needs_audio else None
            frames = self.cache.frames(row["path"], self.media.fps, self.media.max_pixels) if self.needs_frames else None
        except MediaError as exc:
            return _Item(None, row, str(exc))
        return _Item(Sample(row["clip"], row["prompt"], audio, frames), row)


def _batches(dataset: ClipMedia, batch_size: int, workers: int):
    # workers decode the next batches while the model computes this one
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=list,
        prefetch_factor=4 if workers else None,
        persistent_workers=False,
    )


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
    return profile.results_dir / "predictions" / run / split / condition


def _write_atomically(frame: pd.DataFrame, target: Path) -> None:
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    frame.to_parquet(tmp)
    os.replace(tmp, target)


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
    if mode not in ("letters", "generate"):
        raise ValueError(f"mode must be 'letters' or 'generate' (got {mode!r})")
    adapter.check_condition(condition)
    run = run or adapter.name
    out = run_dir(profile, run, split, condition)
    out.mkdir(parents=True, exist_ok=True)
    clips = clips.sort_values("clip").reset_index(drop=True)  # shards must not depend on input order
    plan = {"clips": len(clips), "shard_size": shard_size, "first": clips["clip"].iloc[0] if len(clips) else "", "mode": mode}
    record_path = out / "run.json"
    n_shards = (len(clips) + shard_size - 1) // shard_size
    todo = [s for s in range(n_shards) if not (out / f"shard-{s:05d}.parquet").is_file()]
    if record_path.is_file():
        previous = json.loads(record_path.read_text())
        if previous.get("plan") not in (None, plan):
            raise RuntimeError(f"{out} holds predictions of another plan ({previous['plan']} vs {plan}); remove the folder to start again")
        if previous.get("status") == "done" and not todo:
            return load_predictions(profile, run, split, condition)  # finished: keep its record and timings
    record = {
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
        "plan": plan,
        **(extra_record or {}),
    }
    record_path.write_text(json.dumps({**record, "status": "running"}, indent=1))

    wait = compute = 0.0
    started = time.perf_counter()
    bar = tqdm(total=len(clips), desc=f"{run} {split}/{condition}", disable=not progress, unit="clip")
    bar.update(len(clips) - sum(min(shard_size, len(clips) - s * shard_size) for s in todo))
    for s in todo:
        part = clips.iloc[s * shard_size : (s + 1) * shard_size]
        loader = _batches(ClipMedia(part, condition, profile), profile.models.batch_size, min(profile.media.workers, len(part)))
        rows: list[dict] = []
        tick = time.perf_counter()
        for items in loader:
            got = time.perf_counter()
            wait += got - tick
            rows += _answer_items(adapter, items, condition, mode)
            tick = time.perf_counter()
            compute += tick - got
            bar.update(len(items))
        frame = pd.DataFrame(rows, columns=PREDICTION_COLUMNS).assign(condition=condition)
        _write_atomically(frame, out / f"shard-{s:05d}.parquet")
    bar.close()

    predictions = load_predictions(profile, run, split, condition)
    record.update(
        status="done",
        clips=len(predictions),
        errors=int((predictions["error"] != "").sum()),
        accuracy=float(predictions["correct"].mean()) if len(predictions) else float("nan"),
        timings={"wall_s": round(time.perf_counter() - started, 2), "media_wait_s": round(wait, 2), "model_s": round(compute, 2)},
    )
    record_path.write_text(json.dumps(record, indent=1))
    return predictions


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
    return json.loads((run_dir(profile, run, split, condition) / "run.json").read_text())


def evaluate_models(
    profile: Profile,
    names: tuple[str, ...] | None = None,
    splits: tuple[str, ...] = ("analysis", "test"),
    mode: str = "letters",
    progress: bool = True,
) -> pd.DataFrame:
    """Evaluate every model of the profile under each of its conditions on `splits`.

    Returns one row per (model, split, condition) with the run record's figures; models that
    cannot be loaded here (no tiny version, missing packages) are listed with the reason.
    """
    from .models.registry import ModelUnavailable, get_spec, load_model
    from .study import ensure_models, prepare

    inputs = prepare(profile, progress=progress)
    ensure_models(profile, names, progress=progress)
    if not progress:  # quiet in notebooks: no checkpoint-loading bars in the book's pages
        import transformers

        transformers.utils.logging.disable_progress_bar()
    rows = []
    for name in names or profile.models.evaluate:
        spec = get_spec(name)
        try:
            adapter = load_model(name, profile)
        except ModelUnavailable as exc:
            rows += [{"model": name, "split": s, "condition": c, "status": f"not run: {exc}"} for s in splits for c in spec.conditions]
            continue
        for split in splits:
            for condition in spec.conditions:
                clips = inputs.split(split).sort_values("clip")
                if mode == "generate":  # generation is ~30x slower: a fixed subset suffices to compare
                    clips = clips.head(profile.models.generate_clips)
                run = name if mode == "letters" else f"{name}@generate"
                evaluate(adapter, profile, clips, condition, split, run=run, mode=mode, progress=progress)
                record = load_record(profile, run, split, condition)
                rows.append({"model": name, "split": split, "condition": condition, "status": record["status"],
                             "accuracy": record["accuracy"], "errors": record["errors"], **record["timings"]})
        del adapter
    return pd.DataFrame(rows)
