"""Benchmark of the embedded world: build time, clips per second, and a cheap probe of the
sensory gap.

    python -m benchmarks.bench_world [--profile tiny] [--keep DIR] [--no-probe]

`run()` builds the profile's world afresh in a temporary folder (the profile's own world is
left alone), and the smoke world too, and times both. The probe then checks that the world
carries the gap it is meant to: a multinomial logistic regression on cheap features, one per
modality (log-mel statistics and envelope rhythm for the ear; colour histogram and mask shape
of saturated pixels for the eye), trained on the `pretrain` clips that are informative in that
modality (audible / visible; for the unseen classes, which have no pretrain clips, on as many
`train` clips), scored on every `test` clip. Accuracy is reported per group, 35-way and as
10-option multiple choice (distractors drawn by VGGSound frequency, as the study does), and on
the clips that carry no signal in that modality (should be near chance).

The probe decodes with PyAV at the study's settings (16 kHz mono, the frame at the centre of
each 1-s window), which gives the same frames as `xmd_core.media.load_frames` and the same
audio up to the resampler, at a tenth of the cost.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import shutil
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from xmd_core.config import Profile, load_profile
from xmd_core.world import WorldPaths, build_world, load_clips

SAMPLE_RATE = 16000
N_FFT, HOP, N_MELS = 512, 256, 40


# --- decoding and features ------------------------------------------------------------------


def decode(path: str, sample_rate: int = SAMPLE_RATE, fps: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(mono audio at `sample_rate`, frames at the centre of each 1/fps window)."""
    chunks = []
    with av.open(path) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        for frame in container.decode(audio=0):
            chunks.extend(o.to_ndarray()[0] for o in resampler.resample(frame))
        chunks.extend(o.to_ndarray()[0] for o in resampler.resample(None))
    with av.open(path) as container:
        rate = float(container.streams.video[0].average_rate)
        frames = [(float(f.time), f) for f in container.decode(video=0)]
    count = max(1, int(np.floor(len(frames) / rate * fps + 1e-9)))
    centres = (np.arange(count) + 0.5) / fps
    times = np.array([t for t, _ in frames])
    idx = np.clip(np.searchsorted(times, centres + 1e-4, side="right") - 1, 0, len(frames) - 1)
    return np.concatenate(chunks), np.stack([frames[i][1].to_ndarray(format="rgb24") for i in idx])


def _mel_matrix(sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    def mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def hz(m):
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    edges = hz(np.linspace(mel(20.0), mel(sr / 2), n_mels + 2))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None] - lo) / (mid - lo)
    down = (hi - freqs[None]) / (hi - mid)
    return np.maximum(0.0, np.minimum(up, down))


MEL = _mel_matrix(SAMPLE_RATE, N_FFT, N_MELS)
WINDOW = np.hanning(N_FFT)


def audio_features(x: np.ndarray) -> np.ndarray:
    """Mean and std of the log-mel spectrogram per band, and the envelope's autocorrelation."""
    n = 1 + (len(x) - N_FFT) // HOP
    frames = np.lib.stride_tricks.as_strided(x, (n, N_FFT), (x.strides[0] * HOP, x.strides[0]))
    power = np.abs(np.fft.rfft(frames * WINDOW, axis=1)) ** 2
    logmel = np.log(power @ MEL.T + 1e-8)
    env = logmel.mean(axis=1)
    env = env - env.mean()
    ac = np.correlate(env, env, "full")[len(env) - 1 :]
    ac = ac / (ac[0] + 1e-8)
    lags = ac[2:42:2] if len(ac) >= 42 else np.pad(ac[2::2], (0, 20))[:20]
    return np.concatenate([logmel.mean(axis=0), logmel.std(axis=0), lags])


def _hsv(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = rgb.astype(np.float32) / 255.0
    v = x.max(axis=-1)
    c = v - x.min(axis=-1)
    s = np.where(v > 0, c / np.maximum(v, 1e-6), 0.0)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    safe = np.maximum(c, 1e-6)
    h = np.where(v == r, ((g - b) / safe) % 6.0, np.where(v == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0)) / 6.0
    return h, s, v


def video_features(frames: np.ndarray) -> np.ndarray:
    """Per frame, averaged: hue histogram of saturated pixels (area-weighted), their area, mean
    colour and mask shape (bounding-box fill, aspect, elongation)."""
    feats = []
    for frame in frames:
        h, s, v = _hsv(frame)
        mask = (s > 0.45) & (v > 0.35)
        total = mask.size
        hist = np.bincount((h[mask] * 24).astype(int) % 24, minlength=24) / total
        area = mask.sum() / total
        if mask.sum() >= 4:
            ys, xs = np.nonzero(mask)
            bh, bw = np.ptp(ys) + 1, np.ptp(xs) + 1
            fill = mask.sum() / (bh * bw)
            cov = np.cov(np.stack([ys, xs]).astype(float))
            ev = np.linalg.eigvalsh(cov + 1e-6 * np.eye(2))
            shape = [fill, np.log(bh / bw), np.log(ev[1] / ev[0])]
            colour = frame[mask].mean(axis=0) / 255.0
        else:
            shape, colour = [0.0, 0.0, 0.0], np.zeros(3)
        feats.append(np.concatenate([hist, [area], shape, colour]))
    return np.mean(feats, axis=0)


def _features(path: str) -> tuple[np.ndarray, np.ndarray]:
    audio, frames = decode(path)
    return audio_features(audio), video_features(frames)


def extract(paths: list[str], workers: int, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Audio and video feature matrices of the clips, in order."""
    if workers > 1:
        ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
        with ctx.Pool(workers) as pool:
            out = list(tqdm(pool.imap(_features, paths, chunksize=32), total=len(paths), desc="probe features", disable=not progress))
    else:
        out = [_features(p) for p in tqdm(paths, desc="probe features", disable=not progress)]
    return np.stack([a for a, _ in out]), np.stack([v for _, v in out])


# --- the probe ------------------------------------------------------------------------------


def fit_logistic(x: np.ndarray, y: np.ndarray, n_classes: int, weight_decay: float = 1e-3, steps: int = 200):
    """Multinomial logistic regression (standardised features, L2, L-BFGS); returns a scorer."""
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
    xt = torch.tensor((x - mean) / std, dtype=torch.float64)
    yt = torch.tensor(y)
    w = torch.zeros(x.shape[1], n_classes, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(xt @ w + b, yt) + weight_decay * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    w_np, b_np = w.detach().numpy(), b.detach().numpy()
    return lambda z: ((z - mean) / std) @ w_np + b_np


def mcq_correct(scores: np.ndarray, y: np.ndarray, counts: np.ndarray, seed: int = 0, n_options: int = 10) -> np.ndarray:
    """Whether the best-scored of `n_options` options is right; distractors drawn without
    replacement with probability proportional to the class counts (as the study's questions)."""
    rng = np.random.default_rng(seed)
    out = np.zeros(len(y), dtype=bool)
    k = min(n_options, len(counts))
    for i, true in enumerate(y):
        p = counts.astype(float).copy()
        p[true] = 0.0
        options = np.concatenate([[true], rng.choice(len(counts), size=k - 1, replace=False, p=p / p.sum())])
        out[i] = options[np.argmax(scores[i, options])] == true
    return out


def probe_world(paths: WorldPaths, workers: int | None = None, progress: bool = True, seed: int = 0) -> dict:
    """Probe accuracies of a built world (see the module doc)."""
    workers = workers or os.cpu_count() or 1
    clips = load_clips(paths)
    classes = pd.read_csv(paths.classes_table, keep_default_na=False)
    labels = list(classes.label)
    label_id = {lab: i for i, lab in enumerate(labels)}
    unseen = set(classes.label[classes.group == "unseen"])
    n_pre = int((clips.split == "pretrain").groupby(clips.label).sum().max())
    fit_rows = clips[(clips.split == "pretrain") | (clips.label.isin(unseen) & (clips.split == "train") & (clips["index"] < n_pre))]
    test_rows = clips[clips.split == "test"]
    rows = pd.concat([fit_rows, test_rows], ignore_index=True)
    xa, xv = extract([str(paths.clip_path(c)) for c in rows["clip"]], workers, progress)
    y = rows.label.map(label_id).to_numpy()
    is_fit = np.arange(len(rows)) < len(fit_rows)
    counts = classes["count"].to_numpy()
    test = rows[~is_fit].reset_index(drop=True)

    result: dict = {"n_fit": int(is_fit.sum()), "n_test": int((~is_fit).sum()), "chance_35way": 1 / len(labels), "chance_mcq": 0.1}
    per_clip = {}
    for modality, x, flag in (("ear", xa, "audible"), ("eye", xv, "visible")):
        informative = rows[flag].to_numpy().astype(bool)
        scorer = fit_logistic(x[is_fit & informative], y[is_fit & informative], len(labels))
        scores = scorer(x[~is_fit])
        per_clip[modality] = scores.argmax(axis=1) == y[~is_fit]
        per_clip[f"{modality}_mcq"] = mcq_correct(scores, y[~is_fit], counts, seed)
    table = test.assign(**per_clip)
    by_group = table.groupby("group")[["ear", "eye", "ear_mcq", "eye_mcq"]].mean()
    result["by_group"] = by_group.round(3).to_dict(orient="index")
    informative = {}
    for modality, flag in (("ear", "audible"), ("eye", "visible")):
        informative[modality] = table[table[flag].astype(bool)].groupby("category")[modality].mean().round(3).to_dict()
        result[f"{modality}_uninformative_35way"] = round(float(table.loc[~table[flag].astype(bool), modality].mean()), 3)
        result[f"{modality}_uninformative_mcq"] = round(float(table.loc[~table[flag].astype(bool), f"{modality}_mcq"].mean()), 3)
        result[f"{modality}_informative_35way"] = round(float(table.loc[table[flag].astype(bool), modality].mean()), 3)
    result["informative_by_category"] = informative
    per_class = table.groupby(["group", "label"])[["ear_mcq", "eye_mcq"]].mean()
    result["classes_ear_better_mcq"] = {
        g: f"{int((d.ear_mcq > d.eye_mcq).sum())}/{len(d)}" for g, d in per_class.groupby(level=0)
    }
    return result


# --- the benchmark --------------------------------------------------------------------------


def time_build(profile: Profile, root: Path, workers: int | None) -> tuple[WorldPaths, dict]:
    fresh = dataclasses.replace(profile, artifacts_dir=root)
    cpu0 = os.times()
    started = time.perf_counter()
    paths = build_world(fresh, workers=workers, progress=True)
    wall = time.perf_counter() - started
    manifest = json.loads(paths.manifest.read_text())
    cpu = os.times()
    return paths, {
        "profile": profile.name,
        "clips": manifest["clips"],
        "wall_s": round(wall, 1),
        "clips_per_s": round(manifest["clips"] / wall, 1),
        "workers": manifest["build"]["workers"],
        "disk_mb": round(sum(f.stat().st_size for f in paths.clips_dir.iterdir()) / 1e6, 1),
        # CPU seconds of the worker processes (all of the work when workers > 1)
        "workers_cpu_s": round(cpu.children_user + cpu.children_system - cpu0.children_user - cpu0.children_system, 1),
        "main_cpu_s": round(cpu.user + cpu.system - cpu0.user - cpu0.system, 1),
    }


def run(profile_name: str = "tiny", workers: int | None = None, probe: bool = True, keep: str | None = None) -> dict:
    """Build the smoke world and the profile's world afresh, time them, probe the latter."""
    profile = load_profile(profile_name)
    scratch = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="bench_world_"))
    report: dict = {"machine": {"cpus": os.cpu_count(), "load_avg_1min_before": round(os.getloadavg()[0], 2)}}
    try:
        _, report["smoke_build"] = time_build(load_profile("smoke"), scratch / "smoke", workers)
        paths, report["build"] = time_build(profile, scratch / profile_name, workers)
        if probe:
            started = time.perf_counter()
            report["probe"] = probe_world(paths, workers)
            report["probe"]["seconds"] = round(time.perf_counter() - started, 1)
    finally:
        if not keep:
            shutil.rmtree(scratch, ignore_errors=True)
    _print(report)
    return report


def _print(report: dict) -> None:
    for key in ("smoke_build", "build"):
        if key in report:
            b = report[key]
            print(f"{b['profile']:>6}: {b['clips']} clips in {b['wall_s']} s wall ({b['clips_per_s']} clips/s, {b['workers']} workers, {b['disk_mb']} MB)")
    if "probe" in report:
        p = report["probe"]
        print(f"probe: fit on {p['n_fit']} clips, scored on {p['n_test']} test clips")
        print(pd.DataFrame(p["by_group"]).T.to_string())
        print("informative clips, 35-way, by category:")
        print(pd.DataFrame(p["informative_by_category"]).to_string())
        for m in ("ear", "eye"):
            print(f"{m}: informative {p[f'{m}_informative_35way']}, uninformative {p[f'{m}_uninformative_35way']} (35-way, chance {p['chance_35way']:.3f}); uninformative MCQ {p[f'{m}_uninformative_mcq']} (chance 0.1)")
        print("classes better by ear (MCQ):", p["classes_ear_better_mcq"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--no-probe", action="store_true")
    parser.add_argument("--keep", default=None, help="build into this folder and keep it")
    parser.add_argument("--json", default=None, help="also write the report here")
    args = parser.parse_args()
    report = run(args.profile, args.workers, not args.no_probe, args.keep)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
