"""The Cnn14 the switch starts from. The paper starts from PANNs' AudioSet checkpoint
(`Cnn14_16k_mAP=0.438.pth`; `switch.pretrained` names it, the full profile). The embedded
profiles cannot download it, so they first pre-train a narrower Cnn14 (`switch.width`) as a
single-label audio tagger on the world's `pretrain` split (`switch.tagger_epochs`), standing in
for AudioSet pre-training; the tagger is cached under `artifacts/<profile>/switch/tagger/<key>/`
and trained once."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .keys import key_digest
from . import store
from .cnn14 import Cnn14, load_pretrained_cnn14
from .config import REPO_ROOT, ConfigError, Profile
from .experts import torch_threads  # one thread is fastest on a shared 2-core machine
from .switch_audio import Features, decode_clips, fixed_length, skip_report
from .switch_fit import fit, pick_device

TAGGER_VERSION = 1  # of the tagger's pre-training: bump to retrain the taggers
TAGGER_HOLDOUT = 0.1  # of the pretrain clips per class, held out to report the tagger's accuracy


def tagger_key(profile: Profile) -> str:
    """Hash of everything that determines the pre-trained tagger (not the switch's own epochs or lr)."""
    cfg = profile.switch
    part = {
        "tagger": {k: getattr(cfg, k) for k in ("width", "tagger_epochs", "tagger_lr", "batch_size", "warmup_fraction", "seed")},
        "sections": profile.config_hash("world", "media", "data", "splits"),
        "version": TAGGER_VERSION,
    }
    return key_digest(part, 12)


#: The tagger's record, written last (`store`).
TAGGER_RECORD = "tagger.json"


def tagger_checkpoint(profile: Profile) -> Path:
    return profile.artifacts_dir / "switch" / "tagger" / tagger_key(profile) / "tagger.pt"


def frontend(profile: Profile) -> dict:
    rate = profile.media.sample_rate
    return {"sample_rate": rate, "fmax": min(8000, rate // 2)}


def holdout(rows: pd.DataFrame, fraction: float, seed: int) -> np.ndarray:
    """A boolean mask holding out `fraction` of each class (at least one clip of a class with two or more)."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(rows), dtype=bool)
    for _, idx in rows.groupby("label").indices.items():
        if len(idx) >= 2:
            mask[rng.choice(idx, size=max(1, round(fraction * len(idx))), replace=False)] = True
    return mask


def pretrain_tagger(profile: Profile, progress: bool = True, threads: int | None = 1, device: str | None = None, inputs=None) -> Path:
    """Pre-train the Cnn14 audio tagger of an embedded profile on its `pretrain` split (single
    label, cross-entropy over the split's classes); returns the checkpoint, trained once per key
    (its folder, named by the key, is a `store` step whose record is `tagger.json`)."""
    if profile.switch.tagger_epochs <= 0:
        raise ConfigError(f"{profile.name}: switch.tagger_epochs is 0, so there is no tagger to pre-train")
    target = tagger_checkpoint(profile)

    def train_into(work: Path) -> dict:
        return _train_tagger(work / target.name, profile, progress, threads, device, inputs)

    store.compute(target.parent, TAGGER_RECORD, tagger_key(profile), train_into, "switch tagger", progress)
    return target


def _train_tagger(target: Path, profile: Profile, progress: bool, threads: int | None, device: str | None, inputs=None) -> dict:
    """Train the tagger and save it to `target`; returns its record's fields."""
    from .study import prepare

    cfg = profile.switch
    started = time.perf_counter()
    dev = pick_device(device)
    with torch_threads(threads):
        inputs = inputs if inputs is not None else prepare(profile, progress=progress)
        rows = inputs.split("pretrain")
        if rows.empty:
            raise ConfigError(f"{profile.name}: no `pretrain` clips to pre-train the switch's tagger on; set switch.pretrained to PANNs' checkpoint")
        rows, skipped = decode_clips(profile, rows, progress, "decode pretrain clips")
        classes = sorted(rows["label"].unique())
        y = torch.tensor(rows["label"].map({c: i for i, c in enumerate(classes)}).to_numpy())
        held = holdout(rows, TAGGER_HOLDOUT, cfg.seed)
        length = fixed_length(rows["samples"].to_numpy(), profile.media.sample_rate)
        torch.manual_seed(cfg.seed)
        model = Cnn14(width=cfg.width, classes_num=len(classes), **frontend(profile)).to(dev)
        paths = rows["path"].astype(str).to_numpy()
        train = Features(model, profile, list(paths[~held]), length, dev, progress, "tagger features")
        val = Features(model, profile, list(paths[held]), length, dev, progress, "tagger features (held out)")
        history = fit(model, train, y[~held], "multiclass", cfg.tagger_epochs, cfg.batch_size, cfg.tagger_lr, cfg.warmup_fraction,
                      cfg.seed, val=(val, y[held]), progress=progress, desc=f"tagger (width {cfg.width})")
    report = {
        "key": tagger_key(profile),
        "classes": classes,
        "clips": {"train": int((~held).sum()), "held_out": int(held.sum())},
        "skipped": skip_report(skipped),
        "length": length,
        "held_out_accuracy": history[-1]["val_acc"],
        "train_accuracy": history[-1]["train_acc"],
        "seconds": round(time.perf_counter() - started, 1),
        "threads": torch.get_num_threads() if threads is None else threads,
        "device": str(dev),
        "config": asdict(cfg),
        "version": TAGGER_VERSION,
    }
    model.cpu()
    torch.save({"model": model.state_dict(), "config": model.config, "report": report, "history": history}, target)
    if progress:
        tqdm.write(f"switch tagger: {len(classes)} classes, held-out accuracy {report['held_out_accuracy']:.3f} ({report['seconds']} s)")
    return {**report, "history": history}


def load_tagger(path: str | Path) -> tuple[Cnn14, dict]:
    """A tagger checkpoint written by :func:`pretrain_tagger`: the model (eval mode) and its report."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    model = Cnn14(**saved["config"])
    model.load_state_dict(saved["model"], strict=True)
    return model.eval(), saved["report"]


def initial_model(profile: Profile, progress: bool = True, threads: int | None = 1, device: str | None = None, inputs=None) -> tuple[Cnn14, dict]:
    """The Cnn14 the switch starts from (PANNs' checkpoint or the embedded tagger), with a fresh
    one-logit output layer; and a record of where it came from (`inputs`: the study's shared
    tables, for a tagger still to pre-train)."""
    cfg = profile.switch
    if cfg.pretrained:
        path = Path(cfg.pretrained)
        path = path if path.is_absolute() else REPO_ROOT / path
        model = load_pretrained_cnn14(path, **frontend(profile))
        if model.config["width"] != cfg.width:
            raise ConfigError(f"{profile.name}: switch.width is {cfg.width} but {path} holds a Cnn14 of width {model.config['width']}")
        source = {"source": "panns", "path": str(path)}
    elif cfg.tagger_epochs > 0:
        path = pretrain_tagger(profile, progress=progress, threads=threads, device=device, inputs=inputs)
        model, report = load_tagger(path)
        source = {"source": "tagger", "path": str(path), "tagger_key": report["key"], "tagger_held_out_accuracy": report["held_out_accuracy"],
                  "tagger_seconds": report["seconds"], "tagger_classes": len(report["classes"])}
    else:
        raise ConfigError(
            f"{profile.name}: the switch needs a starting point: set switch.pretrained to PANNs' Cnn14_16k_mAP=0.438.pth "
            "or switch.tagger_epochs > 0 to pre-train a tagger on the pretrain split"
        )
    torch.manual_seed(cfg.seed)
    model.replace_head(1)
    return model, source
