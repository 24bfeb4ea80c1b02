"""The heuristic switch (paper Sec. 4.2): a Cnn14 on a clip's audio that predicts whether the
teacher LLM beats the student LLM on the clip's class.

Labels come from the class-wise comparison of the two models on the analysis set: every clip of
a class where the teacher is strictly more accurate is labelled 1 ("to distill"), every other
clip 0. The switch is trained on the analysis clips marked `switch_split == "train"` (45 per class
in the paper) and validated on those marked "val" (5 per class), with the paper's recipe: Adam,
a cosine schedule with linear warm-up, binary cross-entropy on one logit.

The starting point (PANNs' checkpoint, or a tagger pre-trained on the embedded world) is
`switch_tagger`'s; the training loop `switch_fit`'s; the audio and its features `switch_audio`'s.

Outputs of `train_switch(profile, teacher, student)`, under `results/<profile>/switch/<teacher>-to-<student>/`:
`classes.parquet` (the class comparison), `history.csv` (one row per epoch), `decisions.parquet`
(one row per analysis and finetune clip) and `metrics.json` (its record, with its key: the folder
is written by `store.publish`, so a killed run leaves no folder that looks finished); the weights go to `artifacts/<profile>/switch/<teacher>-to-<student>/switch.pt`.

A decision's `open` is True where the switch predicts the teacher is better (p >= 0.5): the
gate lets the teacher's supervision through. (The paper's wording calls this state "closed", as
a closed circuit conducts: "When the switch is closed, Qwen2-VL distills knowledge to
Qwen2-Audio".) The finetune clips' class labels serve only to report the switch's accuracy there
(the paper's 89.1%); distillation reads `open` alone.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .keys import key_digest
from . import store
from .atomic import save_torch_atomically
from .cnn14 import Cnn14
from .config import Profile
from .study import StudyInputs, prepare
from .experts import torch_threads  # one thread is fastest on a shared 2-core machine
from .switch_audio import Features, decode_clips, fixed_length, skip_report
from .switch_fit import fit, pick_device, predict_logits
from .switch_tagger import initial_model
from .vocabulary import DIRECTIONS

VERSION = 1  # of the switch's training and outputs: bump to retrain every switch
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


# --- paths ----------------------------------------------------------------------------------------


def switch_dir(profile: Profile, teacher: str = "qwen2-vl", student: str = "qwen2-audio") -> Path:
    """Where `train_switch` writes the tables of one direction."""
    return profile.results_dir / "switch" / f"{teacher}-to-{student}"


def switch_checkpoint(profile: Profile, teacher: str = "qwen2-vl", student: str = "qwen2-audio") -> Path:
    return profile.artifacts_dir / "switch" / f"{teacher}-to-{student}" / "switch.pt"


# --- audio and features ------------------------------------------------------------------------------


# --- training ---------------------------------------------------------------------------------------


# --- the tagger (embedded profiles) -------------------------------------------------------------------


# --- the switch ---------------------------------------------------------------------------------------


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
    return key_digest(part, 12)


#: The switch's record, written last (`store`): its figures and key.
METRICS = "metrics.json"


def _done(out: Path, checkpoint: Path, key: str) -> bool:
    return store.finished(out, METRICS, key) and checkpoint.is_file()


def analysis_predictions(profile: Profile, inputs: StudyInputs, teacher: str, student: str, progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The teacher's and the student's analysis predictions, each under its own condition.
    Finished runs of the same weights over the current analysis clips are read as they are (no
    model is loaded); otherwise the model is evaluated first."""
    from .checkpoints import ensure_models
    from .evaluate import model_answers
    from .models.registry import get_spec

    clips = inputs.split("analysis")
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
    inputs: StudyInputs | None = None,
) -> Path:
    """Train the switch of one direction; returns the folder of its tables (see the module doc).

    Returns at once when the folder holds a finished run of the same key (configuration, the two
    models' analysis results, code version). `threads` sets torch's intra-op threads for the run
    (None: as is); `device` defaults to CUDA when available; `inputs`: the study's shared tables,
    built here when not given.
    """
    from .models.registry import get_spec

    if teacher == student:
        raise ValueError(f"teacher and student must differ (got {teacher!r} twice)")
    started = time.perf_counter()
    out = switch_dir(profile, teacher, student)
    checkpoint = switch_checkpoint(profile, teacher, student)
    inputs = inputs if inputs is not None else prepare(profile, progress=progress)
    teacher_preds, student_preds = analysis_predictions(profile, inputs, teacher, student, progress=progress)
    key = switch_key(profile, teacher, student, teacher_preds, student_preds)
    if _done(out, checkpoint, key):
        return out

    with torch_threads(threads):
        comparison = class_comparison(teacher_preds, student_preds)
        clips = _labelled_clips(inputs, comparison)
        good, skipped = decode_clips(profile, clips, progress, "decode analysis and finetune clips")
        fitted = _fit_and_decide(profile, inputs, good, f"{teacher}->{student}", progress, threads, device)
    decisions = _decisions(clips, good, skipped, fitted.pop("p_teacher_better"))
    model, history = fitted.pop("model"), fitted.pop("history")
    metrics = {
        "teacher": teacher,
        "student": student,
        "teacher_condition": get_spec(teacher).conditions[0],
        "student_condition": get_spec(student).conditions[0],
        **_accuracies(decisions),
        "classes_teacher_better": int(comparison["teacher_better"].sum()),
        "classes_total": int(len(comparison)),
        "clips": fitted.pop("clips"),
        "skipped": skip_report(skipped),
        "width": model.config["width"],
        **fitted,
        "threads": torch.get_num_threads() if threads is None else threads,
        "config": asdict(profile.switch),
        "config_hash": profile.config_hash("switch", "world", "media", "data", "splits"),
        "key": key,
        "version": VERSION,
    }
    metrics["seconds"]["total"] = round(time.perf_counter() - started, 1)
    save_torch_atomically({"model": model.state_dict(), "config": model.config, "length": fitted["samples_per_clip"], "key": key}, checkpoint)

    def write_tables(work: Path) -> dict:
        comparison.to_parquet(work / "classes.parquet", index=False)
        pd.DataFrame(history, columns=HISTORY_COLUMNS).to_csv(work / "history.csv", index=False)
        decisions.to_parquet(work / "decisions.parquet", index=False)
        return metrics

    store.publish(out, METRICS, key, write_tables)
    if progress:
        tqdm.write(f"switch {teacher}->{student}: val {metrics['val_accuracy']:.3f}, finetune {metrics['finetune_accuracy']:.3f} "
                   f"({metrics['classes_teacher_better']}/{metrics['classes_total']} classes teacher-better; {metrics['seconds']['total']} s)")
    return out


def _labelled_clips(inputs: StudyInputs, comparison: pd.DataFrame) -> pd.DataFrame:
    """The analysis and finetune clips, each with its class's switch label."""
    analysis = inputs.split("analysis").assign(split="analysis")
    finetune = inputs.split("finetune").assign(split="finetune")
    clips = pd.concat([analysis, finetune], ignore_index=True)[["clip", "split", "switch_split", "label", "path"]]
    clips["label_teacher_better"] = switch_labels(clips, comparison)
    return clips


def _fit_and_decide(profile: Profile, inputs: StudyInputs, good: pd.DataFrame, direction: str, progress: bool, threads: int | None, device: str | None) -> dict:
    """Train the switch on the analysis clips' train part (validated on its val part), then
    decide every decodable clip: the model, its history, p(teacher better) per row of `good`,
    and the run's figures for the record."""
    cfg = profile.switch
    dev = pick_device(device)
    model, source = initial_model(profile, progress=progress, threads=threads, device=device, inputs=inputs)
    model = model.to(dev)
    length = fixed_length(good.loc[good["split"] == "analysis", "samples"].to_numpy(), profile.media.sample_rate)
    is_train = ((good["split"] == "analysis") & (good["switch_split"] == "train")).to_numpy(dtype=bool, copy=True)
    is_val = ((good["split"] == "analysis") & (good["switch_split"] == "val")).to_numpy(dtype=bool, copy=True)
    if not is_train.any():
        raise ValueError(f"{profile.name}: no decodable analysis clips with switch_split == 'train'")
    paths = good["path"].astype(str).to_numpy()
    y = torch.tensor(good["label_teacher_better"].to_numpy())
    train = Features(model, profile, list(paths[is_train]), length, dev, progress, "switch features (train)")
    val = Features(model, profile, list(paths[is_val]), length, dev, progress, "switch features (val)")
    train_started = time.perf_counter()
    history = fit(model, train, y[is_train], "binary", cfg.epochs, cfg.batch_size, cfg.lr, cfg.warmup_fraction, cfg.seed,
                  val=(val, y[is_val]), progress=progress, desc=f"switch {direction}", balanced=cfg.balanced)
    train_seconds = time.perf_counter() - train_started
    predict_started = time.perf_counter()
    everything = Features(model, profile, list(paths), length, dev, keep=False)  # streamed batch by batch
    p = torch.sigmoid(predict_logits(model, everything, progress=progress, desc=f"switch {direction}: decide")[:, 0]).numpy()
    model.cpu()
    return {
        "model": model,
        "history": history,
        "p_teacher_better": p,
        "clips": {"train": int(is_train.sum()), "val": int(is_val.sum()), "finetune": int((good["split"] == "finetune").sum())},
        "init": source,
        "samples_per_clip": length,
        "seconds": {"train": round(train_seconds, 1), "predict": round(time.perf_counter() - predict_started, 1)},
        "device": str(dev),
    }


def _decisions(clips: pd.DataFrame, good: pd.DataFrame, skipped: pd.DataFrame, p: np.ndarray) -> pd.DataFrame:
    """One row per analysis and finetune clip: p(teacher better) and the gate (a clip that could
    not be decoded: no p, closed, its reason in `error`)."""
    good = good.assign(p_teacher_better=p.astype(np.float64), error="")
    reasons = dict(zip(skipped["clip"], skipped["reason"]))
    bad = clips[clips["clip"].isin(skipped["clip"])].assign(p_teacher_better=np.nan, error=lambda t: t["clip"].map(reasons))
    decisions = pd.concat([good, bad], ignore_index=True)
    decisions["open"] = decisions["p_teacher_better"] >= 0.5  # NaN (skipped) compares False
    decisions["label_teacher_better"] = decisions["label_teacher_better"].astype(np.int64)
    return decisions.sort_values(["split", "clip"]).reset_index(drop=True)[DECISION_COLUMNS]


def _accuracies(decisions: pd.DataFrame) -> dict:
    """The switch's accuracy on each part (decoded clips only), the validation majority baseline
    and the share of finetune clips it opens."""

    def accuracy(mask: pd.Series) -> float:
        part = decisions[mask & (decisions["error"] == "")]
        return float((part["open"].astype(int) == part["label_teacher_better"]).mean()) if len(part) else float("nan")

    in_analysis = decisions["split"] == "analysis"
    val_rows = decisions[in_analysis & (decisions["switch_split"] == "val")]
    return {
        "val_accuracy": accuracy(in_analysis & (decisions["switch_split"] == "val")),
        "train_accuracy": accuracy(in_analysis & (decisions["switch_split"] == "train")),
        "finetune_accuracy": accuracy(decisions["split"] == "finetune"),
        "val_majority_accuracy": float(max(val_rows["label_teacher_better"].mean(), 1 - val_rows["label_teacher_better"].mean())) if len(val_rows) else float("nan"),
        "finetune_open_fraction": float(decisions.loc[decisions["split"] == "finetune", "open"].mean()),
    }


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
    return _read(profile, teacher, student, METRICS, lambda p: json.loads(p.read_text()))


def load_history(profile: Profile, teacher: str = "qwen2-vl", student: str = "qwen2-audio") -> pd.DataFrame:
    return _read(profile, teacher, student, "history.csv", pd.read_csv)


def load_classes(profile: Profile, teacher: str = "qwen2-vl", student: str = "qwen2-audio") -> pd.DataFrame:
    return _read(profile, teacher, student, "classes.parquet", pd.read_parquet)


def open_share_by_label(decisions: pd.DataFrame, split: str = "finetune") -> tuple[float, float]:
    """How often the switch opened on `split`'s clips of teacher-better classes, and on the
    others' (NaN for a kind of class with no decided clip; skipped clips are not counted)."""
    decided = decisions[(decisions["split"] == split) & (decisions["error"] == "")]
    share = decided.groupby("label_teacher_better")["open"].mean()
    return float(share.get(1, float("nan"))), float(share.get(0, float("nan")))


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
    "load_classes",
    "load_decisions",
    "load_history",
    "load_metrics",
    "load_switch",
    "open_share_by_label",
    "switch_checkpoint",
    "switch_dir",
    "switch_key",
    "switch_labels",
    "train_switch",
    "train_switches",
]
