"""Train several tiny experts at once, one process each (embedded profiles).

A tiny expert's training step is a chain of small matrix products that one core runs about as
fast as two (`make bench`, `bench_experts`: one training with two threads against two trainings
with one thread each). So on a machine with N cores, the experts still to train are dealt to
min(N, experts) worker processes with one torch thread each, the slowest first, and each worker
trains exactly as `experts.train_expert` does alone (same seed, one thread): the checkpoints
are those of a sequential run.

A worker is killed with its parent (Linux `PR_SET_PDEATHSIG`), so a `kill -9` of `xmd study`
leaves no training behind; its half-written folder is removed by the next run
(`experts._train_locked`).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from .config import Profile
from .experts import _hash_if_world, is_trained, train_expert
from .models.registry import TINY_FAMILY, checkpoint_path

#: Relative cost of one expert's training (measured steps/s on 2 cores, `bench_experts`): the
#: pool starts the slowest first so that the last one to finish is short.
COST = {"qwen2.5-omni": 3.0, "qwen2-audio": 2.0, "qwen2-vl": 1.0, "qwen2.5-vl": 1.0}
_PR_SET_PDEATHSIG = 1


_slot = 0  # this worker's line for its progress bars


def _start_worker(counter) -> None:
    """Worker initialiser: take a progress-bar line, and have the kernel kill this process when
    its parent dies (Linux only)."""
    global _slot
    with counter.get_lock():
        _slot = counter.value
        counter.value += 1
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _train_one(name: str, profile: Profile, progress: bool) -> str:
    return str(train_expert(name, profile, progress=progress, threads=1, bar_position=_slot))


def default_jobs(n_experts: int) -> int:
    return max(1, min(os.cpu_count() or 1, n_experts))


def train_experts(profile: Profile, names: list[str] | tuple[str, ...] | None = None, progress: bool = True, jobs: int | None = None) -> dict[str, Path]:
    """Train (or find) every tiny expert the profile evaluates, `jobs` at a time (default: one
    per core); returns name -> checkpoint folder. With one job, the experts train in this
    process, one after the other."""
    from .experts import train_experts as train_in_turn

    names = list(names) if names is not None else [n for n in profile.models.evaluate if n in TINY_FAMILY]
    unknown = [n for n in names if n not in TINY_FAMILY]
    if unknown:
        raise ValueError(f"no tiny expert for {', '.join(map(repr, unknown))}; tiny models: {', '.join(TINY_FAMILY)}")
    todo = sorted((n for n in names if not is_trained(checkpoint_path(n, profile), _hash_if_world(n, profile))), key=lambda n: -COST.get(n, 1.0))
    jobs = default_jobs(len(todo)) if jobs is None else jobs
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1 (got {jobs})")
    if jobs > 1 and len(todo) > 1:
        context = multiprocessing.get_context("spawn")  # torch's thread pools do not survive fork
        slots = context.Value("i", 0)
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_start_worker, initargs=(slots,)) as pool:
            futures = {name: pool.submit(_train_one, name, profile, progress) for name in todo}
            for future in futures.values():
                future.result()  # a worker's error is raised here, with its traceback
    return train_in_turn(profile, names=names, progress=progress)
