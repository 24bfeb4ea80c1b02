"""Distillation speed with and without the frozen-tower cache, and the teacher run once per clip.

On the first `clips` finetune clips of the profile (a fresh results folder, the profile's experts,
world and decoded-media cache):

- optimizer steps/s and seconds per epoch of the default recipe (Qwen2-VL -> Qwen2-Audio) with
  the towers cached (plus the one-off cost of filling the cache) and recomputed every step, and
  the ratio; seconds per epoch are also extrapolated to the profile's whole finetune split;
- how many clips the teacher answered while two recipes were trained one after the other: each
  clip once (its answers are stored by the evaluation path and read back by the second recipe).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from collections import Counter
from pathlib import Path

from xmd_core import distill, evaluate
from xmd_core.config import load_profile, replace
from xmd_core.distill import finetune_clips
from xmd_core.switch import train_switch

TEACHER, STUDENT = "qwen2-vl", "qwen2-audio"


def _scratch_profile(profile, root: Path, clips: int):
    """The profile with fresh results and adapters, sharing the world, experts and media cache."""
    artifacts = root / "artifacts"
    artifacts.mkdir(parents=True)
    for name in ("world", "checkpoints", "media_cache"):
        (artifacts / name).symlink_to(profile.artifacts_dir / name)
    results = root / "results"
    shutil.copytree(profile.results_dir / "switch", results / "switch")
    scratch = dataclasses.replace(profile, artifacts_dir=artifacts, results_dir=results)
    return replace(scratch, distill={"max_clips": clips})


def _count_scored(counter: Counter):
    """Wrap the evaluation's letter scoring so that every clip a model answers is counted."""
    original = evaluate.score_letters

    def counting(adapter, samples, condition):
        counter[adapter.name] += len(samples)
        return original(adapter, samples, condition)

    evaluate.score_letters = counting
    return original


def run(profile_name: str = "tiny", clips: int = 512) -> dict:
    profile = load_profile(profile_name)
    train_switch(profile, TEACHER, STUDENT, progress=False)  # idempotent: the study has trained it
    full_split = len(finetune_clips(profile))
    out: dict = {"clips": clips, "finetune_split_clips": full_split, "batch_size": profile.distill.batch_size}
    with tempfile.TemporaryDirectory() as tmp:
        scratch = _scratch_profile(profile, Path(tmp), clips)
        scored: Counter = Counter()
        original = _count_scored(scored)
        try:
            timings = {}
            for tower_cache in (True, False):
                folder = distill.distill(scratch, TEACHER, STUDENT, tower_cache=tower_cache, progress=True,
                                         out=Path(tmp) / f"adapter-cache-{tower_cache}")
                info = json.loads((folder / "distill.json").read_text())
                timings[tower_cache] = info
            teacher_after_first = scored[TEACHER]
            distill.distill(scratch, TEACHER, STUDENT, "teacher-kl", progress=True, out=Path(tmp) / "adapter-kl")
        finally:
            evaluate.score_letters = original
    steps = timings[True]["optimizer_steps"]
    for label, info in (("tower_cache", timings[True]), ("recomputed_towers", timings[False])):
        seconds = info["seconds"]["training"]
        out[label] = {
            "optimizer_steps": steps,
            "steps_per_s": round(steps / seconds, 2),
            "epoch_s": round(seconds, 1),
            "epoch_s_whole_finetune_split": round(seconds * full_split / clips, 1),
        }
    out["tower_cache"]["fill_s"] = timings[True]["seconds"]["tower_cache_fill"]
    out["tower_cache"]["fill_s_whole_finetune_split"] = round(out["tower_cache"]["fill_s"] * full_split / clips, 1)
    out["speedup_steps_per_s"] = round(out["tower_cache"]["steps_per_s"] / out["recomputed_towers"]["steps_per_s"], 2)
    out["teacher_clips_answered"] = {"after_first_recipe": teacher_after_first, "after_second_recipe": scored[TEACHER], "clips": clips}
    out["student_clips_answered"] = scored[STUDENT]
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    run()
