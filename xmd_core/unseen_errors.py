"""Where a distilled student's wrong answers on the unseen classes go (chapter 04, finding F9).

Distillation shows the student only the classes of its finetune split. On the unseen split a
wrong answer names either one of those classes or another option. When, after distillation, a
larger share of the wrong answers names a distilled class, the student has learned to prefer the
classes it was taught (its prior over names moved), whatever it learned about hearing them.
Names are compared after `data.normalise_name`, so an AudioSet option ("Wind noise
(microphone)") counts as the VGGSound class it names.
"""

from __future__ import annotations

import pandas as pd

from .config import Profile
from .data import normalise_name
from .distill import DEFAULT_RECIPE
from .sense_tables import predicted_labels
from .study_results import load_inputs
from .transfer import answers


def distilled_classes(profile: Profile) -> set[str]:
    """The (normalised) names of the classes in the finetune split: what distillation teaches."""
    clips = load_inputs(profile).clips
    return {normalise_name(label) for label in clips.loc[clips["split"] == "finetune", "label"].unique()}


def wrong_answer_targets(frame: pd.DataFrame, taught: set[str]) -> dict:
    """Of one run's answers: the wrong ones, how many name a taught class, and the share a wrong
    answer drawn blindly among each question's distractors would give (the reference)."""
    picked = predicted_labels(frame)
    wrong = ~frame["correct"].astype(bool) & picked.notna()
    names_taught = pd.Series([normalise_name(name) in taught for name in picked[wrong]], dtype=bool)
    blind = pd.Series([sum(normalise_name(o) in taught for o in options if o != label) / (len(options) - 1)
                       for options, label in zip(frame["options"], frame["label"])], index=frame.index)
    if not wrong.any():
        share = blind_share = "no wrong answer"
    else:
        share, blind_share = round(100 * float(names_taught.mean()), 1), round(100 * float(blind[wrong].mean()), 1)
    return {"clips": len(frame), "wrong answers": int(wrong.sum()), "naming a distilled class": int(names_taught.sum()),
            "share (%)": share, "blind wrong answer (%)": blind_share}


def unseen_wrong_answers(profile: Profile, teacher: str, student: str, recipe: str = DEFAULT_RECIPE) -> pd.DataFrame:
    """Before and after distillation: where the student's wrong answers on the unseen split go."""
    taught = distilled_classes(profile)
    runs = {"before": answers(profile, student, "unseen"), "after": answers(profile, student, "unseen", teacher, recipe)}
    return pd.DataFrame.from_dict({name: wrong_answer_targets(frame, taught) for name, frame in runs.items()}, orient="index")
