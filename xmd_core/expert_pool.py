"""Train several tiny experts at once, one process each (embedded profiles).

The experts still to train are dealt to min(cores, experts) worker processes with one torch
thread each, the slowest first (`workers`); each worker trains exactly as
`experts.train_expert` does alone (same seed, one thread), so the checkpoints are those of a
sequential run (`tests/test_expert_pool.py`).
"""

from __future__ import annotations

from pathlib import Path

from .config import Profile
from .experts import current_key, is_trained, train_expert
from .models.registry import TINY_FAMILY, checkpoint_path
from .workers import Task, run_tasks, worker_slot

#: Seconds of one expert's training, two at a time on 2 cores (the tiny profile's expert.json,
#: 2026-12): the slowest start first, so that the last one to finish is short.
#: VideoLLaMA3's is scaled from Qwen2-VL's by their expert.json times (168 s vs 181 s, 2026-12).
COST = {"qwen2.5-omni": 834.0, "qwen2-audio": 559.0, "qwen2.5-vl": 364.0, "qwen2-vl": 340.0, "videollama3": 316.0}


def slowest_first(names) -> list[str]:
    """`names` ordered by :data:`COST`, the slowest first (unknown names last)."""
    return sorted(names, key=lambda n: -COST.get(n, 0.0))


def train_in_worker(name: str, profile: Profile, progress: bool = True) -> str:
    """One expert, in a pool worker: one thread, its progress bar on the worker's own line."""
    return str(train_expert(name, profile, progress=progress, threads=1, bar_position=worker_slot()))


def experts_to_train(profile: Profile, names: list[str]) -> list[str]:
    """Those of `names` not trained yet, the slowest first."""
    unknown = [n for n in names if n not in TINY_FAMILY]
    if unknown:
        raise ValueError(f"no tiny expert for {', '.join(map(repr, unknown))}; tiny models: {', '.join(TINY_FAMILY)}")
    todo = [n for n in names if not is_trained(checkpoint_path(n, profile), current_key(n, profile))]
    return slowest_first(todo)


def train_experts(profile: Profile, names: list[str] | tuple[str, ...] | None = None, progress: bool = True, jobs: int | None = None) -> dict[str, Path]:
    """Train (or find) every tiny expert the profile evaluates, `jobs` at a time (default: one
    per core); returns name -> checkpoint folder. With one job they train here, in turn."""
    from .experts import train_experts as train_in_turn

    names = list(names) if names is not None else [n for n in profile.models.evaluate if n in TINY_FAMILY]
    todo = experts_to_train(profile, names)
    if jobs is not None and jobs < 1:
        raise ValueError(f"jobs must be at least 1 (got {jobs})")
    if len(todo) > 1 and jobs != 1:
        run_tasks([Task(f"expert {n}", train_in_worker, (n, profile, progress)) for n in todo], jobs=jobs, progress=progress, desc="experts")
    return train_in_turn(profile, names=names, progress=progress)
