"""Training speed of the tiny experts: the attention supervision's two kernels, and threads
against processes; then the last `xmd study` run's stage table.

1. For each tiny expert, optimizer steps/s of the training step (batch `experts.batch_size`,
   the profile's sizes) with `attention="eager"` (every layer's full attention probabilities,
   the output head on every position for Qwen2-Audio: the step as it was before the fused path)
   and `attention="rows"` (fused attention, the 11 supervised rows only, the head on the last
   two positions). Both models train side by side in one process, steps alternated after a
   warm-up, so a burst of other work on the machine hits both; the figure is the median step.
2. Qwen2-Audio's training on the whole machine: one process with all cores as torch threads,
   against one training process per core with one thread each (`expert_pool`'s way), counted
   as steps/s of all processes together. Each variant runs `repeats` times in turn, after an
   uncounted warm-up; the best of each is kept.

The trainers here encode only the first `clips` pretrain clips (the step does not depend on
how many clips there are), so setting up takes seconds, not minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from xmd_core import experts
from xmd_core.config import REPO_ROOT, load_profile
from xmd_core.expert_context import VenueHeads
from xmd_core.experts import ExpertData, ExpertTrainer, load_expert_data
from xmd_core.models.registry import TINY_FAMILY
from xmd_core.models.tiny import build_tiny_checkpoint
from xmd_core.stages import read_stages
from xmd_core.study import ensure_world

POOL_MODEL = "qwen2-audio"


def _subset(data: ExpertData, clips: int) -> ExpertData:
    """The first `clips` pretrain clips, an eighth of them held out."""
    table = data.table.head(clips).reset_index(drop=True)
    held = max(8, clips // 8)
    return ExpertData(table=table, class_names=data.class_names, class_counts=data.class_counts,
                      heldout=np.arange(held), train=np.arange(held, len(table)))  # fmt: skip


class _Run:
    """One model of one trainer with its optimizer: `step()` trains one batch, returns seconds."""

    def __init__(self, trainer: ExpertTrainer, attention: str, seed: int = 0):
        self.trainer, self.attention = trainer, attention
        trainer.attention = attention
        self.model = trainer.new_model(seed)
        self.embeddings = self.model.get_input_embeddings()
        self.capture = experts._MediaTokens(experts.language_model(self.model))
        self.heads = VenueHeads(self.embeddings.weight.shape[1], tuple(trainer.venues), seed)
        self.optimizer = torch.optim.AdamW([*self.model.parameters(), *self.heads.parameters()], lr=trainer.cfg.lr)
        self.rng = np.random.default_rng(seed)
        self.count = 0

    def step(self) -> float:
        trainer = self.trainer
        trainer.attention = self.attention
        condition = trainer.conditions[self.count % len(trainer.conditions)]
        self.count += 1
        rows = self.rng.choice(trainer.data.train, size=trainer.cfg.batch_size)
        batch = trainer.batch(condition, rows, self.rng)
        start = time.perf_counter()
        parts = trainer.losses(self.model, self.embeddings, self.capture, batch, condition, self.heads)
        self.optimizer.zero_grad(set_to_none=True)
        sum(parts.values()).backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), experts.GRAD_CLIP)
        self.optimizer.step()
        return time.perf_counter() - start


def _trainer(name: str, profile, data: ExpertData, root: Path) -> ExpertTrainer:
    folder = build_tiny_checkpoint(TINY_FAMILY[name], root / name, data.class_names, seed=profile.experts.seed)
    return ExpertTrainer(name, profile, data, folder, progress=False)


def kernels(profile, data: ExpertData, steps: int, warmup: int) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp, experts.torch_threads(1):
        for name in TINY_FAMILY:
            trainer = _trainer(name, profile, data, Path(tmp))
            runs = {kind: _Run(trainer, kind) for kind in experts.ATTENTION_KERNELS}
            seconds: dict[str, list[float]] = {kind: [] for kind in runs}
            for i in range(warmup + steps):
                for kind, run in runs.items():
                    took = run.step()
                    if i >= warmup:
                        seconds[kind].append(took)
            median = {kind: float(np.median(v)) for kind, v in seconds.items()}
            row = {"model": name, "steps": steps, "eager_steps_per_s": round(1 / median["eager"], 2),
                   "rows_steps_per_s": round(1 / median["rows"], 2), "speedup": round(median["eager"] / median["rows"], 2)}  # fmt: skip
            print(row, flush=True)
            rows.append(row)
    return rows


def _worker(profile_name: str, clips: int, threads: int, steps: int, warmup: int) -> None:
    """One training process of the pool comparison: prints its steps/s as JSON."""
    torch.set_num_threads(threads)
    profile = load_profile(profile_name)
    data = _subset(load_expert_data(profile, progress=False), clips)
    with tempfile.TemporaryDirectory() as tmp:
        run = _Run(_trainer(POOL_MODEL, profile, data, Path(tmp)), "rows")
        for _ in range(warmup):
            run.step()
        start = time.perf_counter()
        for _ in range(steps):
            run.step()
        print(json.dumps({"steps_per_s": steps / (time.perf_counter() - start)}), flush=True)


def _launch(profile_name: str, clips: int, processes: int, threads: int, steps: int, warmup: int) -> float:
    """`processes` workers at once; their steps/s summed."""
    command = [sys.executable, "-m", "benchmarks.bench_experts", "--worker", profile_name, str(clips), str(threads), str(steps), str(warmup)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    workers = [subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(processes)]
    total = 0.0
    for worker in workers:
        out, err = worker.communicate()
        if worker.returncode != 0:
            raise RuntimeError(f"bench_experts worker failed:\n{err[-2000:]}")
        total += json.loads(out.strip().splitlines()[-1])["steps_per_s"]
    return total


def pool(profile_name: str, clips: int, steps: int, warmup: int, repeats: int) -> dict:
    cores = os.cpu_count() or 1
    variants = {f"1 process x {cores} threads": (1, cores), f"{cores} processes x 1 thread": (cores, 1)}
    _launch(profile_name, clips, 1, 1, 2, 1)  # uncounted: fills the page cache, compiles nothing counted
    best: dict[str, float] = {}
    for _ in range(repeats):
        for label, (processes, threads) in variants.items():
            rate = _launch(profile_name, clips, processes, threads, steps, warmup)
            best[label] = max(best.get(label, 0.0), rate)
            print({"variant": label, "steps_per_s_all_processes": round(rate, 2)}, flush=True)
    one, many = best.values()
    figures = {"model": POOL_MODEL, "cores": cores, "best_of": repeats, **{k: round(v, 2) for k, v in best.items()}, "processes_over_threads": round(many / one, 2)}
    print(figures, flush=True)
    return figures


def run(profile_name: str = "tiny", clips: int = 256, steps: int = 20, warmup: int = 3, repeats: int = 2) -> dict:
    profile = load_profile(profile_name)
    ensure_world(profile, progress=False)
    data = _subset(load_expert_data(profile, progress=False), clips)
    record = read_stages(profile)
    return {
        "clips": clips,
        "batch_size": profile.experts.batch_size,
        "attention_kernels": kernels(profile, data, steps, warmup),
        "threads_or_processes": pool(profile_name, clips, steps, warmup, repeats),
        "study_stages": record if record is not None else f"no complete `xmd study --profile {profile_name}` run recorded",
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--worker", nargs=5, metavar=("PROFILE", "CLIPS", "THREADS", "STEPS", "WARMUP"))
    parser.add_argument("--profile", default="tiny")
    args = parser.parse_args()
    if args.worker:
        _worker(args.worker[0], *map(int, args.worker[1:]))
    else:
        print(json.dumps(run(args.profile), indent=1))
