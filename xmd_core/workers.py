"""A pool of single-threaded worker processes for independent pieces of the embedded study.

The tiny models' steps are chains of small matrix products that one core runs about as fast as
two (`make bench`, `bench_experts`), so on N cores the study runs N independent tasks at once,
one process and one torch thread each, rather than one task with N threads. A task is a
top-level function and its arguments (they cross a process boundary); it must be idempotent,
like every stage of the study, and must not write what another task of the same batch writes.

A worker is killed with its parent (Linux `PR_SET_PDEATHSIG`), so a `kill -9` of `xmd study`
leaves no work behind; whatever a killed task left half-written is redone by the next run, as
each stage already guarantees. A task's error is raised in the parent, with its traceback.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Callable

from tqdm.auto import tqdm

_PR_SET_PDEATHSIG = 1
_slot = 0  # this worker's line for its own progress bars (0 is the parent's)


@dataclass(frozen=True)
class Task:
    label: str
    function: Callable
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)


def worker_slot() -> int:
    """The progress-bar line of this worker (1, 2, ...); 0 outside a pool."""
    return _slot


def _start_worker(counter) -> None:
    """Worker initialiser: one torch thread, a progress-bar line of its own, and the kernel
    kills this process when its parent dies (Linux only)."""
    global _slot
    import torch

    torch.set_num_threads(1)
    with counter.get_lock():
        counter.value += 1
        _slot = counter.value
    die_with_parent()


def die_with_parent(_worker_id: int | None = None) -> None:
    """Have the kernel kill this process when its parent dies (Linux; elsewhere nothing). Also a
    DataLoader `worker_init_fn`, so that the decoding workers of a killed run do not live on."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def default_jobs(n_tasks: int) -> int:
    return max(1, min(os.cpu_count() or 1, n_tasks))


def run_tasks(tasks: list[Task], jobs: int | None = None, progress: bool = True, desc: str = "tasks") -> dict[str, object]:
    """Run `tasks`, `jobs` at a time (default: one per core), in the order given (put the
    longest first); returns label -> result. With one job, or one task, they run here in turn."""
    jobs = default_jobs(len(tasks)) if jobs is None else jobs
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1 (got {jobs})")
    labels = [t.label for t in tasks]
    if len(set(labels)) != len(labels):
        raise ValueError(f"task labels must be unique: {labels}")
    if jobs == 1 or len(tasks) <= 1:
        return {t.label: t.function(*t.args, **t.kwargs) for t in tasks}
    context = multiprocessing.get_context("spawn")  # torch's thread pools do not survive fork
    results: dict[str, object] = {}
    with (
        ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_start_worker, initargs=(context.Value("i", 0),)) as pool,
        tqdm(total=len(tasks), desc=desc, unit="task", disable=not progress, position=0) as bar,
    ):
        running = {pool.submit(t.function, *t.args, **t.kwargs): t.label for t in tasks}
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                label = running.pop(future)
                if future.exception() is not None:
                    # stop the other tasks now rather than after they finish (minutes)
                    for process in list(getattr(pool, "_processes", {}).values()):
                        process.terminate()
                    raise RuntimeError(f"task {label!r} failed: {future.exception()}") from future.exception()
                results[label] = future.result()
                bar.set_postfix_str(f"{label} done")
                bar.update()
    return {label: results[label] for label in labels}
