"""The switch chapter's accuracy table: each trained switch's record beside the paper's switch
(computed from the stored `metrics.json` and decisions; the paper's numbers from `paper_numbers.csv`)."""

from __future__ import annotations

import pandas as pd

from . import switch
from .config import Profile
from .paper import paper_numbers

#: What a cell of the paper's row says where the paper reports nothing.
NOT_REPORTED = "not in the paper"


def _row(profile: Profile, teacher: str, student: str) -> dict:
    m = switch.load_metrics(profile, teacher, student)
    shares = switch.open_share_by_label(switch.load_decisions(profile, teacher, student))
    init = m["init"]
    return {
        "validation (%)": round(100 * m["val_accuracy"], 1), "finetune split (%)": round(100 * m["finetune_accuracy"], 1),
        "validation majority (%)": round(100 * m["val_majority_accuracy"], 1),
        "switch open on finetune (%)": round(100 * m["finetune_open_fraction"], 1),
        "open on finetune, teacher-better / other classes (%)": " / ".join(f"{100 * share:.1f}" for share in shares),
        "loss": "each label weighs half" if m["config"].get("balanced") else "unweighted",
        "teacher-better classes": f"{m['classes_teacher_better']} of {m['classes_total']}",
        "train / val / finetune clips": f"{m['clips']['train']} / {m['clips']['val']} / {m['clips']['finetune']}",
        "skipped clips": m["skipped"]["count"],
        "initialised from": f"{init['source']} (held-out tagging accuracy {init.get('tagger_held_out_accuracy', float('nan')):.2f})",
        "train s": m["seconds"]["train"],
    }


def _paper_row() -> dict:
    paper = paper_numbers("switch").set_index(["row", "column"])["value"]
    splits = paper_numbers("splits").set_index(["row", "column"])["value"]
    classes = int(splits[("all", "classes")])
    return {
        "validation (%)": paper[("validation", "accuracy")], "finetune split (%)": paper[("finetune set", "accuracy")],
        "teacher-better classes": f"{int(paper[('teacher-better classes', 'classes')])} of {classes}", "loss": "unweighted",
        "train / val / finetune clips": f"{int(paper[('train', 'clips')])} / {int(paper[('validation', 'clips')])} / {int(splits[('finetune', 'clips')])}",
    }


def accuracy_table(profile: Profile, directions) -> pd.DataFrame:
    """One row per trained switch (teacher -> student), then the paper's (Qwen2-VL -> Qwen2-Audio)."""
    rows = {f"{teacher} -> {student}": _row(profile, teacher, student) for teacher, student in directions}
    rows["paper (Qwen2-VL -> Qwen2-Audio)"] = _paper_row()
    return pd.DataFrame(rows).T.fillna(NOT_REPORTED)
