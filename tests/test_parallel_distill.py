"""Data-parallel distillation under `accelerate launch` (2 CPU processes, gloo): the same
effective batch gives the adapter of a single process."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from xmd_core import distill
from xmd_core.cli import main as xmd
from xmd_core.config import load_profile

pytestmark = [pytest.mark.multiprocess, pytest.mark.filterwarnings("ignore:expert .* near chance:RuntimeWarning")]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, smoke_yaml):
    """The smoke profile in a temporary folder with both experts and the switch trained."""
    root = tmp_path_factory.mktemp("parallel-distill")
    path = smoke_yaml(root, seeded=True)
    xmd(["experts", "--profile", str(path), "--models", "qwen2-audio", "qwen2-vl"])
    from xmd_core.switch import train_switch

    profile = load_profile(path)
    train_switch(profile, "qwen2-vl", "qwen2-audio", progress=False)
    return path, profile


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_distill(profile_path: Path, processes: int = 2) -> subprocess.CompletedProcess:
    """`accelerate launch ... -m xmd_core.cli distill` with N CPU processes (gloo). Without CUDA,
    `--multi_gpu` starts the processes with torchrun; `--cpu` alone would need mpirun."""
    accelerate = Path(sys.executable).with_name("accelerate")
    command = [
        str(accelerate), "launch", "--multi_gpu", "--num_processes", str(processes), "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port()),
        "-m", "xmd_core.cli", "distill", "--profile", str(profile_path), "--teacher", "qwen2-vl", "--student", "qwen2-audio",
    ]  # fmt: skip
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "ACCELERATE_USE_CPU": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_two_processes_train_the_adapter_of_one(smoke, tmp_path):
    path, profile = smoke
    cfg = profile.distill
    assert cfg.batch_size == 2 * cfg.micro_batch_size  # one process accumulates 2 micro-batches, two processes 1 each
    single = distill.distill(profile, "qwen2-vl", "qwen2-audio", progress=False, out=tmp_path / "single")
    launch_distill(path)
    shared = distill.adapter_dir(profile, "qwen2-vl", "qwen2-audio")
    info = json.loads((shared / "distill.json").read_text())
    assert info["processes"] == 2 and info["gradient_accumulation"] == 1
    assert info["optimizer_steps"] == json.loads((single / "distill.json").read_text())["optimizer_steps"]
    a, b = load_file(single / "adapter_model.safetensors"), load_file(shared / "adapter_model.safetensors")
    assert a.keys() == b.keys() and a
    moved = max(float(t.abs().max()) for k, t in a.items() if "lora_B" in k)
    assert moved > 0  # the adapters were trained (LoRA B starts at zero)
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=2e-5, rtol=1e-4)
