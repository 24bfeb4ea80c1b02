"""Letter scoring against generation, and evaluation speed per model with the media share.

- clips/s of letter scoring (one forward pass) and of generation as lmms-eval does it (greedy,
  up to 32 new tokens, stop at the end of the turn, then parse a letter) on the same tiny model
  and batch, with the rate at which both pick the same letter;
- clips/s of `evaluate` per model and condition, cold (decoding every clip) and warm (decoded
  media cache filled), and the share of wall time the model waited for media.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from xmd_core.config import load_profile
from xmd_core.evaluate import evaluate, load_record
from xmd_core.media import MediaCache
from xmd_core.models import REGISTRY, Sample, load_model
from xmd_core.scoring import generate_answers, parse_letter, predicted_letters, score_letters
from xmd_core.checkpoints import ensure_models
from xmd_core.study import prepare


def _samples(profile, rows, condition) -> list[Sample]:
    cache = MediaCache(profile.media_cache_dir)
    audio = condition in ("audio", "sounded_video")
    frames = condition in ("silent_video", "sounded_video")
    return [
        Sample(r.clip, r.prompt, cache.audio(r.path, profile.media.sample_rate) if audio else None,
               cache.frames(r.path, profile.media.fps, profile.media.max_pixels) if frames else None)
        for r in rows.itertuples()
    ]


def scoring_vs_generation(profile, rows, name: str, condition: str) -> dict:
    adapter = load_model(name, profile)
    samples = _samples(profile, rows, condition)
    batch = profile.models.batch_size
    start = time.perf_counter()
    scored = [letter for i in range(0, len(samples), batch) for letter in predicted_letters(score_letters(adapter, samples[i : i + batch], condition))]
    t_score = time.perf_counter() - start
    start = time.perf_counter()
    texts = [t for i in range(0, len(samples), batch) for t in generate_answers(adapter, samples[i : i + batch], condition, max_new_tokens=32)]
    t_gen = time.perf_counter() - start
    parsed = [parse_letter(t) for t in texts]
    agree = float(np.mean([a == b for a, b in zip(scored, parsed)]))
    return {"model": name, "condition": condition, "clips": len(samples), "batch": batch,
            "letters_clips_per_s": round(len(samples) / t_score, 1), "generate_clips_per_s": round(len(samples) / t_gen, 1),
            "speedup": round(t_gen / t_score, 1), "agreement": round(agree, 3), "unparseable": sum(p is None for p in parsed)}


def evaluation_speed(profile, clips, name: str, condition: str) -> dict:
    """Cold: empty media cache; warm: the same clips again (decoding skipped, prefetch overlaps)."""
    adapter = load_model(name, profile)
    figures = {"model": name, "condition": condition, "clips": len(clips)}
    for phase in ("cold", "warm"):
        run = f"bench-{phase}"
        shutil.rmtree(profile.results_dir / "predictions" / run, ignore_errors=True)
        evaluate(adapter, profile, clips, condition, "bench", run=run, progress=False)
        timings = load_record(profile, run, "bench", condition)["timings"]
        figures[f"{phase}_clips_per_s"] = round(len(clips) / timings["wall_s"], 1)
        figures[f"{phase}_media_wait_share"] = round(timings["media_wait_s"] / timings["wall_s"], 3)
    return figures


def run(profile_name: str = "tiny", n_clips: int = 128) -> dict:
    base = load_profile(profile_name)
    inputs = prepare(base, progress=False)
    ensure_models(base)
    rows = inputs.split("test").head(n_clips)
    figures: dict = {"scoring_vs_generation": [], "evaluation": []}
    for name in base.models.evaluate:
        spec = REGISTRY[name]
        if not spec.tiny and base.models.kind == "tiny":
            continue
        condition = spec.conditions[-1]
        figures["scoring_vs_generation"].append(scoring_vs_generation(base, rows, name, condition))
        print(figures["scoring_vs_generation"][-1], flush=True)
        # a private cache and results folder so that "cold" really decodes
        with tempfile.TemporaryDirectory() as tmp:
            private = dataclasses.replace(base, results_dir=Path(tmp) / "results", artifacts_dir=Path(tmp) / "artifacts")
            private.artifacts_dir.mkdir(parents=True)
            (private.artifacts_dir / "checkpoints").symlink_to(base.artifacts_dir / "checkpoints")
            for cond in spec.conditions:
                figures["evaluation"].append(evaluation_speed(private, rows, name, cond))
                print(figures["evaluation"][-1], flush=True)
    # the analysis chapter itself, on the stored predictions (evaluation already done above)
    from xmd_core.runner import run_notebook

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        run_notebook("01_analysis", base, out_dir=Path(tmp))
        figures["01_analysis_wall_s"] = round(time.perf_counter() - start, 1)
    print({"01_analysis_wall_s": figures["01_analysis_wall_s"]})
    return figures


if __name__ == "__main__":
    run()
