"""The heuristic switch (paper Sec. 4.2): a Cnn14 on a clip's audio that predicts whether the
teacher LLM beats the student LLM on the clip's class.

Labels come from the class-wise comparison of the two models on the analysis set: every clip of
a class where the teacher is strictly more accurate is labelled 1 ("to distill"), every other
clip 0. The switch is trained on the analysis clips marked `switch_split == "train"` (45 per class
in the paper) and validated on those marked "val" (5 per class), with the paper's recipe: Adam,
a cosine schedule with linear warm-up, binary cross-entropy on one logit.

Initialisation. The paper starts from PANNs' AudioSet checkpoint (`Cnn14_16k_mAP=0.438.pth`;
`switch.pretrained` names it, the full profile). The embedded profiles cannot download it, so
they first pre-train a narrower Cnn14 (`switch.width`) as a single-label audio tagger on the
world's `pretrain` split (`switch.tagger_epochs`), standing in for AudioSet pre-training; the
tagger is cached under `artifacts/<profile>/switch/tagger/<key>/` and trained once.

Outputs of `train_switch(profile, teacher, student)`, under `results/<profile>/switch/<teacher>-to-<student>/`:
`classes.parquet` (the class comparison), `history.csv` (one row per epoch), `decisions.parquet`
(one row per analysis and finetune clip) and `metrics.json` (written last: it marks the run as
done and holds its key); the weights go to `artifacts/<profile>/switch/<teacher>-to-<student>/switch.pt`.

A decision's `open` is True where the switch predicts the teacher is better (p >= 0.5): the
gate lets the teacher's supervision through. (The paper's wording calls this state "closed", as
a closed circuit conducts: "When the switch is closed, Qwen2-VL distills knowledge to
Qwen2-Audio".) The finetune clips' class labels serve only to report the switch's accuracy there
(the paper's 89.1%); distillation reads `open` alone.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .cnn14 import Cnn14, load_pretrained_cnn14
from .config import REPO_ROOT, ConfigError, Profile
from .experts import torch_threads  # one thread is fastest on a shared 2-core machine
from .media import MediaCache, MediaError
from .vocabulary import DIRECTIONS
from .workers import die_with_parent

VERSION = 1  # of the switch's training and outputs: bump to retrain every switch
TAGGER_VERSION = 1  # of the tagger's pre-training: bump to retrain the taggers
MAX_SECONDS = 10.0  # longest audio fed to the switch (VGGSound clips are 10 s)
TAGGER_HOLDOUT = 0.1  # of the pretrain clips per class, held out to report the tagger's accuracy
FEATURE_MEMORY_BYTES = 2 * 1024**3  # log-mel features of a training set are kept in memory up to this size
EXAMPLES_SHOWN = 5  # skipped clips named in the report
DECISION_COLUMNS = ["clip", "split", "switch_split", "label", "label_teacher_better", "p_teacher_better", "open", "error"]
HISTORY_COLUMNS = ["epoch", "train_loss", "train_acc", "val_acc", "lr"]


# --- labels ----------------------------------------------------------------------------------------


def class_comparison(teacher_preds: pd.DataFrame, student_preds: pd.DataFrame) -> pd.DataFrame:
    """Per class: the teacher's and the student's accuracy on the same clips and whether the
    teacher is strictly better (the paper's class-wise comparison; ties count as not better).

    Each table needs `clip`, `label` and `correct` (error rows count as wrong). Both must cover
    the same clips; a difference is an error, since accuracies on different clips do not compare.
    """
    for name, table in (("teacher", teacher_preds), ("student", student_preds)):
        missing = {"clip", "label", "correct"} - set(table.columns)
        if missing:
            raise ValueError(f"{name} predictions lack column(s) {sorted(missing)}")
        if table["clip"].duplicated().any():
            raise ValueError(f"{name} predictions hold a clip more than once")
    only_t = set(teacher_preds["clip"]) - set(student_preds["clip"])
    only_s = set(student_preds["clip"]) - set(teacher_preds["clip"])
    if only_t or only_s:
        raise ValueError(
            f"teacher and student predictions cover different clips ({len(only_t)} only in the teacher's, "
            f"{len(only_s)} only in the student's, e.g. {sorted(only_t | only_s)[:3]})"
        )

    def accuracy(table: pd.DataFrame) -> pd.Series:
        return table.assign(correct=table["correct"].astype(float)).groupby("label")["correct"].mean()

    table = pd.DataFrame({"teacher_acc": accuracy(teacher_preds), "student_acc": accuracy(student_preds)})
    table["clips"] = teacher_preds.groupby("label").size()
    table["teacher_better"] = table["teacher_acc"] > table["student_acc"]
    return table.rename_axis("label").reset_index()[["label", "clips", "teacher_acc", "student_acc", "teacher_better"]]


def switch_labels(clips: pd.DataFrame, comparison: pd.DataFrame) -> np.ndarray:
    """1 for every clip whose class is teacher-better in `comparison`, else 0 (int64, clip order)."""
    better = dict(zip(comparison["label"], comparison["teacher_better"].astype(bool)))
    unknown = sorted(set(clips["label"]) - set(better))
    if unknown:
        raise ValueError(f"{len(unknown)} class(es) of the clips are not in the class comparison, e.g. {unknown[:3]}")
    return clips["label"].map(better).astype(np.int64).to_numpy()


def make_schedule(optimizer: torch.optim.Optimizer, total_steps: int, warmup_fraction: float):
    """The paper's schedule: linear warm-up over `warmup_fraction` of the steps, then a cosine
    decay to zero (Hugging Face's `get_cosine_schedule_with_warmup`)."""
    from transformers import get_cosine_schedule_with_warmup

    return get_cosine_schedule_with_warmup(optimizer, round(warmup_fraction * total_steps), total_steps)


# --- paths ----------------------------------------------------------------------------------------


def switch_dir(profile: Profile, teacher: str = "qwen2-vl", student: str = "qwen2-audio") -> Path:
    """Where `train_switch` writes the tables of one direction."""
    return profile.results_dir / "switch" / f"{teacher}-to-{student}"


def switch_checkpoint(profile: Profile, teacher: str = "qwen2-vl", student: str = "qwen2-audio") -> Path:
    return profile.artifacts_dir / "switch" / f"{teacher}-to-{student}" / "switch.pt"


def tagger_key(profile: Profile) -> str:
    """Hash of everything that determines the pre-trained tagger (not the switch's own epochs or lr)."""
    cfg = profile.switch
    part = {
        "tagger": {k: getattr(cfg, k) for k in ("width", "tagger_epochs", "tagger_lr", "batch_size", "warmup_fraction", "seed")},
        "sections": profile.config_hash("world", "media", "data", "splits"),
        "version": TAGGER_VERSION,
    }
    return hashlib.sha256(json.dumps(part, sort_keys=True).encode()).hexdigest()[:12]


def tagger_checkpoint(profile: Profile) -> Path:
    return profile.artifacts_dir / "switch" / "tagger" / tagger_key(profile) / "tagger.pt"


# --- audio and features ------------------------------------------------------------------------------


class _Probe(Dataset):
    """Decodes each clip once through the cache (filling it) and reports its length or error."""

    def __init__(self, cache: MediaCache, paths: list[str], sample_rate: int):
        self.cache, self.paths, self.sample_rate = cache, paths, sample_rate

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, int, str]:
        try:
            return i, int(self.cache.audio(self.paths[i], self.sample_rate).shape[0]), ""
        except MediaError as exc:
            return i, 0, str(exc)


def _decode(profile: Profile, rows: pd.DataFrame, progress: bool, desc: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Decode every clip of `rows`; returns (rows that decoded, with a `samples` column;
    the skipped ones: clip, split, reason). Skipped clips are reported, never silently dropped."""
    rows = rows.reset_index(drop=True)
    cache = MediaCache(profile.media_cache_dir)
    probe = _Probe(cache, rows["path"].astype(str).tolist(), profile.media.sample_rate)
    workers = min(profile.media.workers, max(len(rows) // 64, 0))
    loader = DataLoader(probe, batch_size=16, num_workers=workers, collate_fn=list, worker_init_fn=die_with_parent)
    lengths = np.zeros(len(rows), dtype=np.int64)
    errors = [""] * len(rows)
    for batch in tqdm(loader, desc=desc, unit="batch", disable=not progress, leave=False):
        for i, n, error in batch:
            lengths[i], errors[i] = n, error
    errors = pd.Series(errors, index=rows.index)
    bad = (errors != "") | (lengths == 0)
    errors[bad & (errors == "")] = "no audio samples"
    skipped = pd.DataFrame({"clip": rows["clip"][bad], "split": rows["split"][bad], "reason": errors[bad]})
    if len(skipped):
        shown = "; ".join(f"{c}: {r}" for c, r in zip(skipped["clip"][:EXAMPLES_SHOWN], skipped["reason"][:EXAMPLES_SHOWN]))
        tqdm.write(f"switch: skipped {len(skipped)} of {len(rows)} clip(s) ({desc}) that could not be decoded: {shown}")
    return rows[~bad].assign(samples=lengths[~bad]).reset_index(drop=True), skipped.reset_index(drop=True)


def fixed_length(lengths: np.ndarray, sample_rate: int) -> int:
    """The number of samples every clip is padded or cropped to: the most common clip length,
    at most MAX_SECONDS."""
    if len(lengths) == 0:
        raise ValueError("no decodable clips to take a length from")
    values, counts = np.unique(lengths, return_counts=True)
    return int(min(values[counts.argmax()], round(MAX_SECONDS * sample_rate)))


def fit_length(wave: np.ndarray, length: int) -> np.ndarray:
    """`wave` cropped to its first `length` samples or zero-padded at the end."""
    if len(wave) >= length:
        return wave[:length]
    return np.pad(wave, (0, length - len(wave)))


class _Features:
    """Log-mel features of a list of clips, from the model's fixed front end. When the whole set
    fits in FEATURE_MEMORY_BYTES they are computed once and kept (the front end is fixed, so an
    epoch need not recompute them); otherwise each batch is decoded and transformed anew."""

    def __init__(self, model: Cnn14, profile: Profile, paths: list[str], length: int, device: torch.device,
                 progress: bool = False, desc: str = "features", keep: bool = True, chunk: int = 64):
        self.model, self.paths, self.length, self.device = model, paths, length, device
        self.cache = MediaCache(profile.media_cache_dir)
        self.sample_rate = profile.media.sample_rate
        frames = length // model.config["hop_size"] + 1
        self.kept: torch.Tensor | None = None
        if keep and len(paths) * frames * model.config["mel_bins"] * 4 <= FEATURE_MEMORY_BYTES:
            parts = [self._compute(np.arange(s, min(s + chunk, len(paths))))
                     for s in tqdm(range(0, len(paths), chunk), desc=desc, unit="chunk", disable=not progress, leave=False)]
            self.kept = torch.cat(parts).cpu() if parts else torch.empty(0, 1, frames, model.config["mel_bins"])

    def __len__(self) -> int:
        return len(self.paths)

    def _compute(self, idx: np.ndarray) -> torch.Tensor:
        waves = np.stack([fit_length(self.cache.audio(self.paths[i], self.sample_rate), self.length) for i in idx])
        return self.model.logmel(torch.from_numpy(waves).float().to(self.device))

    def get(self, idx: np.ndarray) -> torch.Tensor:
        if self.kept is not None:
            return self.kept[torch.as_tensor(idx)].to(self.device)
        return self._compute(idx)


# --- training ---------------------------------------------------------------------------------------


def _loss_and_hits(kind: str, logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if kind == "binary":
        logit = logits[:, 0]
        return F.binary_cross_entropy_with_logits(logit, target.float()), ((logit >= 0).long() == target).sum()
    return F.cross_entropy(logits, target), (logits.argmax(dim=1) == target).sum()


@torch.no_grad()
def predict_logits(model: Cnn14, features: _Features, batch_size: int = 64, progress: bool = False, desc: str = "predict") -> torch.Tensor:
    """The output layer's logits for every clip of `features`, in eval mode (CPU tensor)."""
    model.eval()
    out = []
    for s in tqdm(range(0, len(features), batch_size), desc=desc, unit="batch", disable=not progress, leave=False):
        out.append(model.forward_logmel(features.get(np.arange(s, min(s + batch_size, len(features)))))["logits"].cpu())
    return torch.cat(out) if out else torch.empty(0, model.config["classes_num"])


def _accuracy(kind: str, logits: torch.Tensor, target: torch.Tensor) -> float:
    if len(target) == 0:
        return float("nan")
    hits = (logits[:, 0] >= 0).long() == target if kind == "binary" else logits.argmax(dim=1) == target  # p >= 0.5
    return float(hits.float().mean())


def fit(
    model: Cnn14,
    train: _Features,
    target: torch.Tensor,
    kind: str,
    epochs: int,
    batch_size: int,
    lr: float,
    warmup_fraction: float,
    seed: int,
    val: tuple[_Features, torch.Tensor] | None = None,
    progress: bool = True,
    desc: str = "train",
) -> list[dict]:
    """Train every trainable parameter with Adam and the cosine-with-warm-up schedule; returns
    one record per epoch (epoch, train_loss, train_acc in train mode, val_acc, lr at its end)."""
    device = next(model.parameters()).device
    target = target.to(device)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    steps_per_epoch = math.ceil(len(train) / batch_size)
    schedule = make_schedule(optimizer, epochs * steps_per_epoch, warmup_fraction)
    order_rng = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # dropout
    history = []
    bar = tqdm(total=epochs * steps_per_epoch, desc=desc, unit="step", disable=not progress, leave=False)
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(train), generator=order_rng).numpy()
        total_loss, hits = 0.0, 0
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size]
            logits = model.forward_logmel(train.get(idx))["logits"]
            loss, batch_hits = _loss_and_hits(kind, logits, target[torch.as_tensor(idx, device=device)])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total_loss += loss.item() * len(idx)
            hits += int(batch_hits)
            bar.update(1)
        record = {"epoch": epoch, "train_loss": total_loss / len(train), "train_acc": hits / len(train), "val_acc": float("nan"),
                  "lr": schedule.get_last_lr()[0]}
        if val is not None and len(val[0]):
            record["val_acc"] = _accuracy(kind, predict_logits(model, val[0], batch_size), val[1])
        bar.set_postfix(loss=f"{record['train_loss']:.3f}", val=f"{record['val_acc']:.3f}")
        history.append(record)
    bar.close()
    return history


def _device(device: str | None) -> torch.device:
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def _save_atomically(obj, target: Path) -> None:
    """torch.save to a temp file beside `target`, renamed into place: a killed run leaves no
    half-written file under the final name."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise


def _write_text_atomically(text: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, target)


def _frontend(profile: Profile) -> dict:
    rate = profile.media.sample_rate
    return {"sample_rate": rate, "fmax": min(8000, rate // 2)}


def _holdout(rows: pd.DataFrame, fraction: float, seed: int) -> np.ndarray:
    """A boolean mask holding out `fraction` of each class (at least one clip of a class with two or more)."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(rows), dtype=bool)
    for _, idx in rows.groupby("label").indices.items():
        if len(idx) >= 2:
            mask[rng.choice(idx, size=max(1, round(fraction * len(idx))), replace=False)] = True
    return mask


# --- the tagger (embedded profiles) -------------------------------------------------------------------


def pretrain_tagger(profile: Profile, progress: bool = True, threads: int | None = 1, device: str | None = None) -> Path:
    """Pre-train the Cnn14 audio tagger of an embedded profile on its `pretrain` split (single
    label, cross-entropy over the split's classes); returns the checkpoint, trained once per key."""
    from .study import prepare

    cfg = profile.switch
    if cfg.tagger_epochs <= 0:
        raise ConfigError(f"{profile.name}: switch.tagger_epochs is 0, so there is no tagger to pre-train")
    target = tagger_checkpoint(profile)
    if target.is_file():
        return target
    started = time.perf_counter()
    dev = _device(device)
    with torch_threads(threads):
        inputs = prepare(profile, progress=progress)
        rows = inputs.split("pretrain")
        if rows.empty:
            raise ConfigError(f"{profile.name}: no `pretrain` clips to pre-train the switch's tagger on; set switch.pretrained to PANNs' checkpoint")
        rows, skipped = _decode(profile, rows, progress, "decode pretrain clips")
        classes = sorted(rows["label"].unique())
        y = torch.tensor(rows["label"].map({c: i for i, c in enumerate(classes)}).to_numpy())
        held = _holdout(rows, TAGGER_HOLDOUT, cfg.seed)
        length = fixed_length(rows["samples"].to_numpy(), profile.media.sample_rate)
        torch.manual_seed(cfg.seed)
        model = Cnn14(width=cfg.width, classes_num=len(classes), **_frontend(profile)).to(dev)
        paths = rows["path"].astype(str).to_numpy()
        train = _Features(model, profile, list(paths[~held]), length, dev, progress, "tagger features")
        val = _Features(model, profile, list(paths[held]), length, dev, progress, "tagger features (held out)")
        history = fit(model, train, y[~held], "multiclass", cfg.tagger_epochs, cfg.batch_size, cfg.tagger_lr, cfg.warmup_fraction,
                      cfg.seed, val=(val, y[held]), progress=progress, desc=f"tagger (width {cfg.width})")
    report = {
        "key": tagger_key(profile),
        "classes": classes,
        "clips": {"train": int((~held).sum()), "held_out": int(held.sum())},
        "skipped": _skip_report(skipped),
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
    _save_atomically({"model": model.state_dict(), "config": model.config, "report": report, "history": history}, target)
    _write_text_atomically(json.dumps({**report, "history": history}, indent=1), target.with_name("tagger.json"))
    if progress:
        tqdm.write(f"switch tagger: {len(classes)} classes, held-out accuracy {report['held_out_accuracy']:.3f} ({report['seconds']} s)")
    return target


def load_tagger(path: str | Path) -> tuple[Cnn14, dict]:
    """A tagger checkpoint written by :func:`pretrain_tagger`: the model (eval mode) and its report."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    model = Cnn14(**saved["config"])
    model.load_state_dict(saved["model"], strict=True)
    return model.eval(), saved["report"]


def initial_model(profile: Profile, progress: bool = True, threads: int | None = 1, device: str | None = None) -> tuple[Cnn14, dict]:
    """The Cnn14 the switch starts from (PANNs' checkpoint or the embedded tagger), with a fresh
    one-logit output layer; and a record of where it came from."""
    cfg = profile.switch
    if cfg.pretrained:
        path = Path(cfg.pretrained)
        path = path if path.is_absolute() else REPO_ROOT / path
        model = load_pretrained_cnn14(path, **_frontend(profile))
        if model.config["width"] != cfg.width:
            raise ConfigError(f"{profile.name}: switch.width is {cfg.width} but {path} holds a Cnn14 of width {model.config['width']}")
        source = {"source": "panns", "path": str(path)}
    elif cfg.tagger_epochs > 0:
        path = pretrain_tagger(profile, progress=progress, threads=threads, device=device)
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


# --- the switch ---------------------------------------------------------------------------------------


def _skip_report(skipped: pd.DataFrame) -> dict:
    return {
        "count": int(len(skipped)),
        "by_split": {str(k): int(v) for k, v in skipped["split"].value_counts().items()} if len(skipped) else {},
        "examples": skipped.head(EXAMPLES_SHOWN).to_dict(orient="records"),
    }


def _predictions_hash(*tables: pd.DataFrame) -> str:
    digest = hashlib.sha256()
    for table in tables:
        part = table[["clip", "correct"]].sort_values("clip")
        digest.update(json.dumps([part["clip"].tolist(), part["correct"].astype(bool).tolist()]).encode())
    return digest.hexdigest()[:12]


def switch_key(profile: Profile, teacher: str, student: str, teacher_preds: pd.DataFrame, student_preds: pd.DataFrame) -> str:
    """Hash of the configuration, the two models' analysis results and the code version."""
    part = {
        "config": profile.config_hash("switch", "world", "media", "data", "splits"),
        "predictions": _predictions_hash(teacher_preds, student_preds),
        "direction": [teacher, student],
        "version": VERSION,
    }
    return hashlib.sha256(json.dumps(part, sort_keys=True).encode()).hexdigest()[:12]


def _done(out: Path, checkpoint: Path, key: str) -> bool:
    metrics = out / "metrics.json"
    if not metrics.is_file() or not checkpoint.is_file():
        return False
    if not all((out / name).is_file() for name in ("classes.parquet", "history.csv", "decisions.parquet")):
        return False
    return json.loads(metrics.read_text()).get("key") == key


def analysis_predictions(profile: Profile, teacher: str, student: str, progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The teacher's and the student's analysis predictions, each under its own condition.
    Finished runs of the same weights over the current analysis clips are read as they are (no
    model is loaded); otherwise the model is evaluated first."""
    from .evaluate import model_answers
    from .models.registry import get_spec
    from .study import ensure_models, prepare

    clips = prepare(profile, progress=progress).split("analysis")
    ensure_models(profile, (teacher, student), progress=progress)  # the embedded experts, trained once
    found = [model_answers(profile, name, clips, "analysis", get_spec(name).conditions[0], progress=progress) for name in (teacher, student)]
    return found[0], found[1]


def train_switch(
    profile: Profile,
    teacher: str = "qwen2-vl",
    student: str = "qwen2-audio",
    progress: bool = True,
    threads: int | None = 1,
    device: str | None = None,
) -> Path:
    """Train the switch of one direction; returns the folder of its tables (see the module doc).

    Returns at once when the folder holds a finished run of the same key (configuration, the two
    models' analysis results, code version). `threads` sets torch's intra-op threads for the run
    (None: as is); `device` defaults to CUDA when available.
    """
    from .models.registry import get_spec
    from .study import prepare

    if teacher == student:
        raise ValueError(f"teacher and student must differ (got {teacher!r} twice)")
    started = time.perf_counter()
    out = switch_dir(profile, teacher, student)
    checkpoint = switch_checkpoint(profile, teacher, student)
    teacher_preds, student_preds = analysis_predictions(profile, teacher, student, progress=progress)
    key = switch_key(profile, teacher, student, teacher_preds, student_preds)
    if _done(out, checkpoint, key):
        return out

    cfg = profile.switch
    dev = _device(device)
    with torch_threads(threads):
        inputs = prepare(profile, progress=progress)
        comparison = class_comparison(teacher_preds, student_preds)
        analysis = inputs.split("analysis").assign(split="analysis")
        finetune = inputs.split("finetune").assign(split="finetune")
        clips = pd.concat([analysis, finetune], ignore_index=True)[["clip", "split", "switch_split", "label", "path"]]
        clips["label_teacher_better"] = switch_labels(clips, comparison)
        good, skipped = _decode(profile, clips, progress, "decode analysis and finetune clips")

        model, source = initial_model(profile, progress=progress, threads=threads, device=device)
        model = model.to(dev)
        length = fixed_length(good.loc[good["split"] == "analysis", "samples"].to_numpy(), profile.media.sample_rate)
        is_train = ((good["split"] == "analysis") & (good["switch_split"] == "train")).to_numpy(dtype=bool, copy=True)
        is_val = ((good["split"] == "analysis") & (good["switch_split"] == "val")).to_numpy(dtype=bool, copy=True)
        if not is_train.any():
            raise ValueError(f"{profile.name}: no decodable analysis clips with switch_split == 'train'")
        paths = good["path"].astype(str).to_numpy()
        y = torch.tensor(good["label_teacher_better"].to_numpy())
        train = _Features(model, profile, list(paths[is_train]), length, dev, progress, "switch features (train)")
        val = _Features(model, profile, list(paths[is_val]), length, dev, progress, "switch features (val)")
        train_started = time.perf_counter()
        history = fit(model, train, y[is_train], "binary", cfg.epochs, cfg.batch_size, cfg.lr, cfg.warmup_fraction, cfg.seed,
                      val=(val, y[is_val]), progress=progress, desc=f"switch {teacher}->{student}")
        train_seconds = time.perf_counter() - train_started

        predict_started = time.perf_counter()
        everything = _Features(model, profile, list(paths), length, dev, keep=False)  # streamed batch by batch
        p = torch.sigmoid(predict_logits(model, everything, progress=progress, desc=f"switch {teacher}->{student}: decide")[:, 0]).numpy()
        predict_seconds = time.perf_counter() - predict_started

    good = good.assign(p_teacher_better=p.astype(np.float64), error="")
    bad = clips[clips["clip"].isin(skipped["clip"])].assign(p_teacher_better=np.nan, error=lambda t: t["clip"].map(dict(zip(skipped["clip"], skipped["reason"]))))
    decisions = pd.concat([good, bad], ignore_index=True)
    decisions["open"] = decisions["p_teacher_better"] >= 0.5  # NaN (skipped) compares False
    decisions["label_teacher_better"] = decisions["label_teacher_better"].astype(np.int64)
    decisions = decisions.sort_values(["split", "clip"]).reset_index(drop=True)[DECISION_COLUMNS]

    def accuracy(mask: pd.Series) -> float:
        part = decisions[mask & (decisions["error"] == "")]
        return float((part["open"].astype(int) == part["label_teacher_better"]).mean()) if len(part) else float("nan")

    in_analysis = decisions["split"] == "analysis"
    val_rows = decisions[in_analysis & (decisions["switch_split"] == "val")]
    metrics = {
        "teacher": teacher,
        "student": student,
        "teacher_condition": get_spec(teacher).conditions[0],
        "student_condition": get_spec(student).conditions[0],
        "val_accuracy": accuracy(in_analysis & (decisions["switch_split"] == "val")),
        "train_accuracy": accuracy(in_analysis & (decisions["switch_split"] == "train")),
        "finetune_accuracy": accuracy(decisions["split"] == "finetune"),
        "val_majority_accuracy": float(max(val_rows["label_teacher_better"].mean(), 1 - val_rows["label_teacher_better"].mean())) if len(val_rows) else float("nan"),
        "finetune_open_fraction": float(decisions.loc[decisions["split"] == "finetune", "open"].mean()),
        "classes_teacher_better": int(comparison["teacher_better"].sum()),
        "classes_total": int(len(comparison)),
        "clips": {"train": int(is_train.sum()), "val": int(is_val.sum()), "finetune": int((good["split"] == "finetune").sum())},
        "skipped": _skip_report(skipped),
        "init": source,
        "width": model.config["width"],
        "samples_per_clip": length,
        "seconds": {"train": round(train_seconds, 1), "predict": round(predict_seconds, 1), "total": round(time.perf_counter() - started, 1)},
        "threads": torch.get_num_threads() if threads is None else threads,
        "device": str(dev),
        "config": asdict(cfg),
        "config_hash": profile.config_hash("switch", "world", "media", "data", "splits"),
        "key": key,
        "version": VERSION,
    }
    model.cpu()
    _save_atomically({"model": model.state_dict(), "config": model.config, "length": length, "key": key}, checkpoint)
    out.mkdir(parents=True, exist_ok=True)
    comparison.to_parquet(out / "classes.parquet", index=False)
    pd.DataFrame(history, columns=HISTORY_COLUMNS).to_csv(out / "history.csv", index=False)
    decisions.to_parquet(out / "decisions.parquet", index=False)
    _write_text_atomically(json.dumps(metrics, indent=1), out / "metrics.json")  # last: marks the run as done
    if progress:
        tqdm.write(f"switch {teacher}->{student}: val {metrics['val_accuracy']:.3f}, finetune {metrics['finetune_accuracy']:.3f} "
                   f"({metrics['classes_teacher_better']}/{metrics['classes_total']} classes teacher-better; {metrics['seconds']['total']} s)")
    return out


def train_switches(profile: Profile, directions: tuple[tuple[str, str], ...] = DIRECTIONS,
                   progress: bool = True, threads: int | None = 1) -> dict[tuple[str, str], Path]:
    """Both directions of the paper (the tagger, when used, is pre-trained once and shared)."""
    return {(t, s): train_switch(profile, t, s, progress=progress, threads=threads) for t, s in directions}


# --- reading the results -------------------------------------------------------------------------------


def _read(profile: Profile, teacher: str, student: str, name: str, reader: Callable[[Path], object]):
    path = switch_dir(profile, teacher, student) / name
    if not path.is_file():
        raise FileNotFoundError(f"no switch results at {path}; run xmd_core.switch.train_switch(profile, {teacher!r}, {student!r}) first")
    return reader(path)


def load_decisions(profile: Profile, teacher: str = "qwen2-vl", student: str = "qwen2-audio") -> pd.DataFrame:
    """One row per analysis and finetune clip: the switch's probability that the teacher is better and its decision."""
    return _read(profile, teacher, student, "decisions.parquet", pd.read_parquet)


def load_metrics(profile: Profile, teacher: str = "qwen2-vl", student: str = "qwen2-audio") -> dict:
    return _read(profile, teacher, student, "metrics.json", lambda p: json.loads(p.read_text()))


def load_history(profile: Profile, teacher: str = "qwen2-vl", student: str = "qwen2-audio") -> pd.DataFrame:
    return _read(profile, teacher, student, "history.csv", pd.read_csv)


def load_classes(profile: Profile, teacher: str = "qwen2-vl", student: str = "qwen2-audio") -> pd.DataFrame:
    return _read(profile, teacher, student, "classes.parquet", pd.read_parquet)


def load_switch(profile: Profile, teacher: str = "qwen2-vl", student: str = "qwen2-audio") -> Cnn14:
    """The trained switch (eval mode): `model(waveform)["clipwise_output"][:, 0]` is p(teacher better)."""
    path = switch_checkpoint(profile, teacher, student)
    if not path.is_file():
        raise FileNotFoundError(f"no switch checkpoint at {path}; run xmd_core.switch.train_switch(profile, {teacher!r}, {student!r}) first")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    model = Cnn14(**saved["config"])
    model.load_state_dict(saved["model"], strict=True)
    return model.eval()


__all__ = [
    "class_comparison",
    "fit",
    "initial_model",
    "load_classes",
    "load_decisions",
    "load_history",
    "load_metrics",
    "load_switch",
    "load_tagger",
    "make_schedule",
    "pretrain_tagger",
    "switch_checkpoint",
    "switch_dir",
    "switch_key",
    "switch_labels",
    "tagger_checkpoint",
    "tagger_key",
    "train_switch",
    "train_switches",
]
