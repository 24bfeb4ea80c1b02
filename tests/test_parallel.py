"""Data-parallel evaluation under `accelerate launch` (2 CPU processes, gloo), and the decoded-media
cache filled by several processes at once."""

import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xmd_core.cli import main as xmd
from xmd_core.config import load_profile
from xmd_core.evaluate import load_predictions, load_record, run_dir
from xmd_core.media import MediaCache, load_audio, load_frames

# the smoke expert trains for a few steps only: it is not meant to be a usable expert
pytestmark = [pytest.mark.multiprocess, pytest.mark.filterwarnings("ignore:expert .* near chance:RuntimeWarning")]

EVAL = ["eval", "--model", "qwen2-audio", "--condition", "audio", "--split", "test", "--shard-size", "8"]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, smoke_yaml):
    """The smoke profile in a temporary folder, with its world and the qwen2-audio expert built."""
    root = tmp_path_factory.mktemp("parallel")
    path = smoke_yaml(root, seeded=True)
    xmd(["experts", "--profile", str(path), "--models", "qwen2-audio"])  # the world, then the expert
    return path, load_profile(path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(profile_path: Path, run: str, processes: int = 2) -> subprocess.CompletedProcess:
    """`accelerate launch --multi_gpu --num_processes N -m xmd_core.cli eval ...` on the CPU.

    (accelerate's `--cpu` runs several processes only through mpirun; on a machine without CUDA,
    `--multi_gpu` starts them with torchrun and `xmd eval` joins them over gloo.)
    """
    accelerate = Path(sys.executable).with_name("accelerate")
    command = [
        str(accelerate), "launch", "--multi_gpu", "--num_processes", str(processes), "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port()),
        "-m", "xmd_core.cli", *EVAL, "--profile", str(profile_path), "--run", run,
    ]  # fmt: skip
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "ACCELERATE_USE_CPU": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def _same_predictions(a: pd.DataFrame, b: pd.DataFrame) -> None:
    columns = ["clip", "label", "answer", "predicted", "correct", "error"]
    pd.testing.assert_frame_equal(a[columns], b[columns])
    np.testing.assert_allclose(np.stack(a["letter_logits"]), np.stack(b["letter_logits"]), atol=1e-5, equal_nan=True)


def _mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted(folder.glob("shard-*.parquet"))}


@pytest.mark.slow
def test_two_processes_give_the_predictions_of_one_and_resume(smoke):
    path, profile = smoke
    xmd([*EVAL, "--profile", str(path), "--run", "single"])  # one process, no launcher
    single = load_predictions(profile, "single", "test", "audio")
    assert len(single) > 16, "too few test clips for several shards per process"
    record = load_record(profile, "single", "test", "audio")
    assert record["processes"] == 1 and record["clips_per_process"] == [len(single)]

    started = time.perf_counter()
    done = launch(path, "pair")
    launched_s = time.perf_counter() - started
    pair = load_predictions(profile, "pair", "test", "audio")
    _same_predictions(pair, single)
    record = load_record(profile, "pair", "test", "audio")
    assert record["status"] == "done" and record["processes"] == 2 and record["clips"] == len(single)
    shares = record["clips_per_process"]
    assert len(shares) == 2 and min(shares) > 0 and sum(shares) == len(single), shares
    assert done.stdout.count('"run": "pair"') == 1, "only the main process prints the record"
    folder = run_dir(profile, "pair", "test", "audio")
    assert not list(folder.glob(".*.tmp")), "a temp file was left behind"

    # resume under 2 processes: only the missing shard is answered again
    before = _mtimes(folder)
    (folder / "shard-00003.parquet").unlink()
    launch(path, "pair")
    after = _mtimes(folder)
    assert after.keys() == before.keys()
    assert [n for n in after if after[n] != before[n]] == ["shard-00003.parquet"]
    resumed = load_record(profile, "pair", "test", "audio")
    assert resumed["status"] == "done" and resumed["clips_per_process"] == [8, 0]
    _same_predictions(load_predictions(profile, "pair", "test", "audio"), single)
    print(f"2-process launch: {launched_s:.1f} s")


FILL = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from xmd_core.media import MediaCache
    root, go, ready, *paths = sys.argv[1:]
    Path(ready).touch()
    while not Path(go).exists():  # start together, to collide on the same entries
        time.sleep(0.005)
    cache = MediaCache(root)
    for path in paths:
        cache.audio(path, 16000)
        cache.frames(path, 1.0, 262144)
""")


def test_media_cache_filled_by_two_processes_at_once(tmp_path, real_clip):
    clips = []
    for i in range(4):  # distinct entries (the key holds the path) with little decoding each
        clips.append(tmp_path / f"clip{i}.mp4")
        os.link(real_clip, clips[-1])
    root, go = tmp_path / "cache", tmp_path / "go"
    ready = [tmp_path / f"ready{k}" for k in range(2)]
    children = [subprocess.Popen([sys.executable, "-c", FILL, str(root), str(go), str(r), *map(str, clips)], stderr=subprocess.PIPE, text=True) for r in ready]
    deadline = time.time() + 120
    while not all(r.exists() for r in ready) and time.time() < deadline:
        time.sleep(0.01)
    go.touch()
    for child in children:
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err[-3000:]
    entries = sorted(root.rglob("*.npy"))
    assert len(entries) == 2 * len(clips)
    assert not [p for p in root.rglob("*") if p.is_file() and p.suffix != ".npy"], "a temp file was left behind"
    audio, frames = load_audio(real_clip, 16000), load_frames(real_clip, 1.0, 262144)
    cache = MediaCache(root)
    for clip in clips:
        for function, settings, expected in (("load_audio", {"sample_rate": 16000}, audio), ("load_frames", {"fps": 1.0, "max_pixels": 262144}, frames)):
            entry = cache.entry_path(clip, function, settings)
            np.testing.assert_array_equal(np.load(entry), expected)

