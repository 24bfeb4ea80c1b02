"""Experts trained side by side (xmd_core.expert_pool) are those of a sequential run."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from safetensors.torch import load_file

from xmd_core import expert_pool, experts
from xmd_core.config import replace
from xmd_core.models.registry import checkpoint_path

pytestmark = [pytest.mark.multiprocess, pytest.mark.filterwarnings("ignore:expert .* near chance:RuntimeWarning")]
NAMES = ["qwen2-audio", "qwen2-vl"]


def _weights(name, profile):
    return load_file(f"{checkpoint_path(name, profile)}/model.safetensors")


def test_two_jobs_train_the_sequential_experts(tmp_path, smoke_in):
    together = replace(smoke_in(tmp_path / "together"), experts={"steps": 8, "mix_steps": 2, "eval_every": 5})
    in_turn = dataclasses.replace(together, artifacts_dir=tmp_path / "in_turn" / "artifacts", results_dir=tmp_path / "in_turn" / "results")
    folders = expert_pool.train_experts(together, names=NAMES, progress=False, jobs=2)
    assert set(folders) == set(NAMES)
    expert_pool.train_experts(in_turn, names=NAMES, progress=False, jobs=1)
    for name in NAMES:
        a, b = _weights(name, together), _weights(name, in_turn)
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), name
        info = json.loads((folders[name] / "expert.json").read_text())
        assert info["threads"] == 1
    # trained already: nothing to do, no worker started
    assert expert_pool.train_experts(together, names=NAMES, progress=False, jobs=2) == folders


def test_bad_names_and_jobs_are_refused(smoke_in, tmp_path):
    profile = smoke_in(tmp_path)
    with pytest.raises(ValueError, match="no tiny expert for 'qwen9'"):
        expert_pool.train_experts(profile, names=["qwen9"], progress=False)
    with pytest.raises(ValueError, match="jobs must be at least 1"):
        expert_pool.train_experts(profile, names=["qwen2-audio"], progress=False, jobs=0)


def test_slowest_expert_starts_first():
    order = expert_pool.slowest_first(["qwen2-vl", "qwen2.5-omni", "qwen2-audio"])
    assert order[0] == "qwen2.5-omni" and set(expert_pool.COST) >= set(experts.TINY_FAMILY)
