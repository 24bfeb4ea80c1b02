"""Tables of the switch, distillation and ablation chapters (Sec. 4), computed from the stored
predictions and records (no model runs here).

Every gain is paired: the student before and after distillation answer the same questions about
the same clips, so gains carry a paired bootstrap interval and McNemar's test.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import stats
from .config import Profile
from .distill import DEFAULT_RECIPE, RECIPES, own_condition, run_name
from .evaluate import load_predictions
from .models.registry import REGISTRY
from .paper import paper_numbers
from .vocabulary import ABLATION_DIRECTION, DIRECTIONS  # noqa: F401 (the chapters read them here too)

#: The paper's two directions (teacher, student); the ablations use the first.
#: Table 2's rows in the paper's order, with the paper's row names.
TABLE2_ROWS = {
    "teacher-kl": "KL on teacher's logits (T=2)",
    "teacher-kl+labels": "KL + teacher's labels",
    "ground-truth": "ground-truth labels (upper bound)",
    "teacher-labels": "teacher's labels (default)",
    "no-anti-forgetting": "without anti-forgetting loss",
}


def answers(profile: Profile, model: str, split: str, teacher: str | None = None, recipe: str = DEFAULT_RECIPE) -> pd.DataFrame:
    """A model's stored answers on a split under its own condition; with `teacher`, the
    distilled student's."""
    run = model if teacher is None else run_name(teacher, model, recipe)
    return load_predictions(profile, run, split, own_condition(model))


def _accuracy_cell(frame: pd.DataFrame, seed: int) -> str:
    res = stats.accuracy_ci(frame["correct"].to_numpy(), seed=seed)
    return stats.percent_cell(res["acc"], res["low"], res["high"])


def paired_gain(before: pd.DataFrame, after: pd.DataFrame, seed: int = 0) -> dict:
    """Accuracy before and after on the same clips, the gain with its paired bootstrap interval,
    and McNemar's test (p-value; b = right only before, c = right only after)."""
    both = before[["clip", "correct"]].merge(after[["clip", "correct"]], on="clip", suffixes=("_before", "_after"), validate="one_to_one")
    if len(both) != len(before) or len(both) != len(after):
        raise ValueError(f"before ({len(before)} clips) and after ({len(after)} clips) are not the same clips")
    diff = stats.paired_difference_ci(both["correct_before"], both["correct_after"], seed=seed)
    test = stats.mcnemar(both["correct_before"], both["correct_after"])
    return {
        "clips": diff["n"],
        "before": 100 * diff["acc_a"],
        "after": 100 * diff["acc_b"],
        "gain": 100 * diff["diff"],
        "gain 95% CI": f"[{100 * diff['low']:+.1f}, {100 * diff['high']:+.1f}]",
        "right only before": test["b"],
        "right only after": test["c"],
        "McNemar p": test["p_value"],
    }


# --- Table 1's distilled rows ----------------------------------------------------------------------


def table1_distilled(profile: Profile, splits: tuple[str, ...] = ("analysis", "test"), seed: int = 0) -> pd.DataFrame:
    """Each direction's student before and after distillation, and the teacher, with the
    paper's numbers beside."""
    paper = paper_numbers("table1").pivot(index="row", columns="column", values="value")
    rows = []
    for teacher, student in DIRECTIONS:
        names = {
            REGISTRY[student].display: answers_by_split(profile, student, splits),
            f"{REGISTRY[student].display} distilled from {REGISTRY[teacher].display.split('-7B')[0]}": answers_by_split(
                profile, student, splits, teacher
            ),
            f"(teacher) {REGISTRY[teacher].display}": answers_by_split(profile, teacher, splits),
        }
        for row, by_split in names.items():
            entry = {"row": row}
            for split in splits:
                entry[f"{split} (this run)"] = _accuracy_cell(by_split[split], seed)
                key = row.removeprefix("(teacher) ")
                entry[f"{split} (paper)"] = paper.loc[key, split] if key in paper.index else np.nan
            rows.append(entry)
    return pd.DataFrame(rows).set_index("row")


def answers_by_split(profile: Profile, model: str, splits, teacher: str | None = None, recipe: str = DEFAULT_RECIPE) -> dict[str, pd.DataFrame]:
    return {split: answers(profile, model, split, teacher, recipe) for split in splits}


def gains(profile: Profile, splits: tuple[str, ...] = ("analysis", "test"), seed: int = 0) -> pd.DataFrame:
    """The default recipe's gain per direction and split (paired interval, McNemar)."""
    rows = []
    for teacher, student in DIRECTIONS:
        for split in splits:
            gain = paired_gain(answers(profile, student, split), answers(profile, student, split, teacher), seed)
            rows.append({"student": REGISTRY[student].display, "teacher": REGISTRY[teacher].display, "split": split, **gain})
    return pd.DataFrame(rows)


# --- where the teacher is better --------------------------------------------------------------------


def teacher_better_classes(profile: Profile, teacher: str, student: str) -> pd.Series:
    """The switch's class-wise labels (teacher more accurate on the analysis split), by class."""
    from .switch import load_classes

    classes = load_classes(profile, teacher, student)
    return classes.set_index("label")["teacher_better"].astype(bool)


def gain_by_class_group(profile: Profile, teacher: str, student: str, split: str = "test", recipe: str = DEFAULT_RECIPE, seed: int = 0) -> pd.DataFrame:
    """The gain on clips of classes where the teacher is better, and on the others: the student
    should gain on the first and hold on the second."""
    better = teacher_better_classes(profile, teacher, student)
    before, after = answers(profile, student, split), answers(profile, student, split, teacher, recipe)
    rows = []
    for name, wanted in (("teacher better", True), ("student as good or better", False)):
        labels = better.index[better == wanted]
        part = before["label"].isin(labels)
        if not part.any():
            continue
        chosen = before.loc[part, "clip"]
        gain = paired_gain(before[before["clip"].isin(chosen)], after[after["clip"].isin(chosen)], seed)
        rows.append({"classes": name, "n classes": len(labels), **gain})
    return pd.DataFrame(rows)


def classwise_before_after(profile: Profile, teacher: str, student: str, split: str = "test", recipe: str = DEFAULT_RECIPE) -> pd.DataFrame:
    """Class-wise accuracy (%) of the student before and after, and of the teacher, with the
    class-wise gain; sorted by the student's accuracy before (hardest first)."""
    frames = {
        "before": answers(profile, student, split),
        "after": answers(profile, student, split, teacher, recipe),
        "teacher": answers(profile, teacher, split),
    }
    long = pd.concat([f[["label", "correct"]].assign(column=name) for name, f in frames.items()])
    wide = stats.classwise_accuracy(long, model_col="column").mul(1.0)
    wide[["before", "after", "teacher"]] *= 100
    wide["gain"] = wide["after"] - wide["before"]
    better = teacher_better_classes(profile, teacher, student)
    wide["teacher better (switch label)"] = better.reindex(wide.index).fillna(False).astype(bool)
    return wide.sort_values(["before", "teacher"], ascending=[True, False])


# --- Table 2 ------------------------------------------------------------------------------------------


def table2(profile: Profile, splits: tuple[str, ...] = ("analysis", "test"), seed: int = 0) -> pd.DataFrame:
    """The five recipes (teacher Qwen2-VL, student Qwen2-Audio): accuracy with intervals, the
    paired gain over the original student, and the paper's numbers."""
    teacher, student = ABLATION_DIRECTION
    paper = paper_numbers("table2").pivot(index="row", columns="column", values="value")
    rows = []
    for recipe, paper_row in TABLE2_ROWS.items():
        entry = {"setting": paper_row, "recipe": recipe}
        for split in splits:
            after = answers(profile, student, split, teacher, recipe)
            gain = paired_gain(answers(profile, student, split), after, seed)
            entry[f"{split} (this run)"] = _accuracy_cell(after, seed)
            entry[f"{split} gain"] = f"{gain['gain']:+.1f} {gain['gain 95% CI']}"
            entry[f"{split} McNemar p"] = gain["McNemar p"]
            entry[f"{split} (paper)"] = paper.loc[paper_row, split]
        rows.append(entry)
    return pd.DataFrame(rows).set_index("setting")


def recipe_differences(profile: Profile, split: str = "test", seed: int = 0) -> pd.DataFrame:
    """Each ablation against the default recipe on the same clips (paired)."""
    teacher, student = ABLATION_DIRECTION
    default = answers(profile, student, split, teacher, DEFAULT_RECIPE)
    rows = []
    for recipe in RECIPES:
        if recipe == DEFAULT_RECIPE:
            continue
        gain = paired_gain(default, answers(profile, student, split, teacher, recipe), seed)
        rows.append({"recipe": TABLE2_ROWS[recipe], "vs default": f"{gain['gain']:+.1f} {gain['gain 95% CI']}", "McNemar p": gain["McNemar p"]})
    return pd.DataFrame(rows).set_index("recipe")


# --- Figure 3 bottom: unseen classes ----------------------------------------------------------------


def unseen_summary(overall: dict) -> pd.DataFrame:
    """The unseen classes' paired gain (`unseen_classes`) beside the paper's Figure 3 (bottom),
    which reports the accuracies only."""
    paper = paper_numbers("figure3").set_index("column")["value"]
    before, after = paper["before distillation"], paper["after distillation"]
    keys = {"before (%)": "before", "after (%)": "after", "gain": "gain", "gain 95% CI": "gain 95% CI", "McNemar p": "McNemar p", "clips": "clips"}
    table = pd.DataFrame({"this run": {name: overall[key] for name, key in keys.items()},
                          "paper": {"before (%)": before, "after (%)": after, "gain": after - before}})
    return table.astype(object).where(table.notna(), "not in the paper")


def unseen_classes(profile: Profile, teacher: str, student: str, recipe: str = DEFAULT_RECIPE, seed: int = 0) -> tuple[dict, pd.DataFrame]:
    """Classes kept out of distillation (options from `mcq.unseen_options`' pool): the overall
    paired gain and the class-wise accuracy before and after (and of the teacher)."""
    before, after = answers(profile, student, "unseen"), answers(profile, student, "unseen", teacher, recipe)
    overall = paired_gain(before, after, seed)
    frames = {"before": before, "after": after, "teacher": answers(profile, teacher, "unseen")}
    long = pd.concat([f[["label", "correct"]].assign(column=name) for name, f in frames.items()])
    wide = stats.classwise_accuracy(long, model_col="column")
    wide[["before", "after", "teacher"]] *= 100
    wide["gain"] = wide["after"] - wide["before"]
    return overall, wide
