"""Data-parallel evaluation: 1 process against 2 under `accelerate launch`, same clips.

One tiny model (qwen2-audio, audio) answers the first `n_clips` test clips of the profile, in a
fresh results folder each time and with the decoded-media cache already filled (so the figure is
the model's, not the decoder's). Each process gets cores / N torch threads, so both runs use the
whole machine (one process is also run with a single thread: on a small or busy machine torch's
intra-op threads can cost more than they gain). Reported: clips/s of `evaluate` (wall time in
run.json: from the first shard to the last, all processes together), the seconds of the whole
command (start-up, tables and model loading included), and the speed-up of 2 processes over the
best single process.

Run with ``python -m benchmarks.bench_parallel`` (or through ``benchmarks.run``). Each process
runs ``python -m benchmarks.bench_parallel --worker ...``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from xmd_core.config import REPO_ROOT, load_profile
from xmd_core.evaluate import evaluate, load_model_here, load_record, process_state
from xmd_core.media import MediaCache
from xmd_core.checkpoints import ensure_models
from xmd_core.study import prepare

MODEL, CONDITION, SPLIT = "qwen2-audio", "audio", "test"


def _worker(profile_path: str, run: str, n_clips: int) -> None:
    """What each process runs: the real path of `xmd eval`, on the first `n_clips` clips."""
    profile = load_profile(profile_path)
    state = process_state()
    with state.main_process_first():
        inputs = prepare(profile, progress=False)
    adapter = load_model_here(MODEL, profile)
    clips = inputs.split(SPLIT).sort_values("clip").head(n_clips)
    evaluate(adapter, profile, clips, CONDITION, SPLIT, run=run, progress=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _command(processes: int, profile_path: Path, run: str, n_clips: int) -> list[str]:
    worker = ["-m", "benchmarks.bench_parallel", "--worker", str(profile_path), run, str(n_clips)]
    if processes == 1:
        return [sys.executable, *worker]
    accelerate = str(Path(sys.executable).with_name("accelerate"))
    return [
        accelerate, "launch", "--multi_gpu", "--num_processes", str(processes), "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port()), *worker,
    ]  # fmt: skip


def _private_profile(base, root: Path) -> Path:
    """The profile with a fresh results folder (its probe and question tables copied: nothing is
    probed again) and the same artifacts (checkpoints, world, warm media cache)."""
    raw = yaml.safe_load(base.source_file.read_text())
    results = root / "results"
    results.mkdir(parents=True)
    for name in ("probe.parquet", "questions.parquet", "questions_unseen.parquet"):
        if (base.results_dir / name).is_file():
            shutil.copy(base.results_dir / name, results / name)
    raw.update(artifacts_dir=str(base.artifacts_dir), results_dir=str(results))
    path = root / f"{base.name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _configs(cores: int, process_counts: tuple[int, ...]) -> list[tuple[int, int]]:
    """(processes, torch threads per process): cores / N each; one process also with 1 thread,
    since intra-op threads can lose more than they gain on a small or busy machine."""
    configs = [(n, max(1, cores // n)) for n in process_counts]
    if cores > 1 and 1 in process_counts:
        configs.insert(1, (1, 1))
    return configs


def run(profile_name: str = "tiny", n_clips: int = 1024, process_counts: tuple[int, ...] = (1, 2), repeats: int = 2) -> dict:
    """After an uncounted warm-up run, each configuration `repeats` times, in turn: the best of
    each is kept, so neither the order nor a burst of other work on the machine decides the figure. The speed-up of N processes is taken over
    the best configuration of one process."""
    base = load_profile(profile_name)
    inputs = prepare(base, progress=False)
    ensure_models(base, (MODEL,), progress=False)
    clips = inputs.split(SPLIT).sort_values("clip").head(n_clips)
    cache = MediaCache(base.media_cache_dir)
    for path in clips["path"]:  # warm: every process reads decoded audio from the cache
        cache.audio(path, base.media.sample_rate)
    cores = os.cpu_count() or 1
    configs = _configs(cores, process_counts)
    figures: dict = {"model": MODEL, "condition": CONDITION, "clips": len(clips), "cores": cores, "runs": [], "best": []}
    with tempfile.TemporaryDirectory() as tmp:
        profile_path = _private_profile(base, Path(tmp))
        private = load_profile(profile_path)
        # uncounted: the first process of a session pays the cold page cache and imports
        warm = subprocess.run(_command(1, profile_path, "bench-warmup", min(len(clips), 256)), env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
                              cwd=REPO_ROOT, capture_output=True, text=True)  # fmt: skip
        if warm.returncode != 0:
            raise RuntimeError(f"warm-up run failed:\n{warm.stderr[-2000:]}")
        for attempt in range(repeats):
            for n, threads in configs:
                env = {**os.environ, "OMP_NUM_THREADS": str(threads), "CUDA_VISIBLE_DEVICES": "", "ACCELERATE_USE_CPU": "1"}
                run_name = f"bench-{n}p{threads}t-{attempt}"
                start = time.perf_counter()
                done = subprocess.run(_command(n, profile_path, run_name, len(clips)), env=env, cwd=REPO_ROOT, capture_output=True, text=True)
                command_s = time.perf_counter() - start
                if done.returncode != 0:
                    raise RuntimeError(f"{n} process(es) failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
                record = load_record(private, run_name, SPLIT, CONDITION)
                wall = record["timings"]["wall_s"]
                row = {"processes": n, "threads_per_process": threads, "eval_wall_s": wall, "clips_per_s": round(len(clips) / wall, 1),
                       "command_s": round(command_s, 1), "clips_per_process": record["clips_per_process"]}
                figures["runs"].append(row)
                print(row, flush=True)
    for n, threads in configs:
        rows = [r for r in figures["runs"] if (r["processes"], r["threads_per_process"]) == (n, threads)]
        figures["best"].append({**min(rows, key=lambda r: r["eval_wall_s"]), "command_s": min(r["command_s"] for r in rows)})
    singles = [r for r in figures["best"] if r["processes"] == 1]
    if singles:
        one = min(singles, key=lambda r: r["eval_wall_s"])
        for row in figures["best"]:
            if row["processes"] > 1:
                row["speedup"] = round(one["eval_wall_s"] / row["eval_wall_s"], 2)
                row["speedup_command"] = round(min(r["command_s"] for r in singles) / row["command_s"], 2)
                print(f"{row['processes']} processes over 1 ({len(clips)} clips, {cores} cores, best of {repeats}): x{row['speedup']} "
                      f"for the evaluation ({one['clips_per_s']} -> {row['clips_per_s']} clips/s), x{row['speedup_command']} for the whole command",
                      flush=True)
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--worker", nargs=3, metavar=("PROFILE_YAML", "RUN", "N_CLIPS"))
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--clips", type=int, default=1024)
    args = parser.parse_args()
    if args.worker:
        _worker(args.worker[0], args.worker[1], int(args.worker[2]))
    else:
        run(args.profile, args.clips)
