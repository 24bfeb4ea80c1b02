"""Which sense each answer could use: tables of the analysis and distillation chapters, from the
stored predictions and the clips' tagged labels (`clip_labels`).

The paper scores each clip against VGGSound's single label. With every label of a clip tagged
heard only (A), seen only (V) or both (AV), the sensory gap is measured per clip: an audio model
should fail where the asked label is only seen, a visual model where it is only heard. A
question may also offer, as a distractor, another label of the same clip (a *present
distractor*): the paper counts choosing it as wrong, a multi-label reading as right.

Each function takes `answers`: row name -> one model's predictions under one condition
(`evaluate.load_predictions`), so that the chapters name their rows.
"""

from __future__ import annotations

import pandas as pd

from . import stats
from .clip_labels import ANSWER_TAGS, FLAGS, answer_tags, clip_flags, flags_modelled, present_distractors, present_labels
from .mcq import LETTERS

TAG_NAMES = {"A": "heard only (A)", "V": "seen only (V)", "AV": "heard and seen (AV)",
             "none": "neither sense", "unannotated": "clip not annotated"}


def _cell(correct: pd.Series, seed: int) -> str:
    if not len(correct):
        return "no clip"
    res = stats.accuracy_ci(correct.to_numpy(), seed=seed)
    return f"{stats.percent_cell(res['acc'], res['low'], res['high'])} (n={res['n']})"


def tag_counts(questions: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """How many questions ask for a label of each tag."""
    tags = answer_tags(questions, labels).value_counts()
    return pd.DataFrame({"questions": [int(tags.get(t, 0)) for t in ANSWER_TAGS]}, index=[TAG_NAMES[t] for t in ANSWER_TAGS])


def accuracy_by_tag(answers: dict[str, pd.DataFrame], labels: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Accuracy (%) [95% CI] (n) of each row, split by the asked label's tag (tags with a question only)."""
    tagged = {row: frame.assign(answer_tag=answer_tags(frame, labels)) for row, frame in answers.items()}
    present = [t for t in ANSWER_TAGS if any((f["answer_tag"] == t).any() for f in tagged.values())]
    table = {row: {TAG_NAMES[t]: _cell(f.loc[f["answer_tag"] == t, "correct"], seed) for t in present} for row, f in tagged.items()}
    return pd.DataFrame(table).T.rename_axis("row")


def confusion_rate(audio: pd.DataFrame, silent: pd.DataFrame, sounded: pd.DataFrame, seed: int = 0) -> dict:
    """Modality confusion of an audio-visual model: of the clips it answers right from one sense
    alone (audio, or silent video), how many it gets wrong from both (sounded video); and the
    opposite, wrong from each sense alone but right from both."""
    both = audio[["clip", "correct"]].merge(silent[["clip", "correct"]], on="clip", suffixes=("_audio", "_silent"), validate="one_to_one")
    both = both.merge(sounded[["clip", "correct"]].rename(columns={"correct": "correct_sounded"}), on="clip", validate="one_to_one")
    if not len(both) == len(audio) == len(silent) == len(sounded):
        raise ValueError(f"the three conditions answer different clips ({len(audio)}, {len(silent)}, {len(sounded)}; {len(both)} shared)")
    alone = both["correct_audio"] | both["correct_silent"]
    confused = alone & ~both["correct_sounded"]
    rescued = ~alone & both["correct_sounded"]
    return {"clips": int(len(both)), "right from one sense alone": int(alone.sum()), "of them wrong from both": int(confused.sum()),
            "confusion rate (%)": _cell(confused[alone], seed), "wrong from each alone, right from both": int(rescued.sum())}


def distillation_by_tag(profile, labels: pd.DataFrame, split: str = "test", seed: int = 0) -> pd.DataFrame:
    """`accuracy_by_tag` of each student before and after distillation (both directions)."""
    from .analysis import row_name
    from .distill import own_condition
    from .transfer import DIRECTIONS, answers

    rows = {}
    for teacher, student in DIRECTIONS:
        name = row_name(student, own_condition(student), note=False)
        rows[f"{name}: before"] = answers(profile, student, split)
        rows[f"{name}: distilled from {row_name(teacher, own_condition(teacher), note=False)}"] = answers(profile, student, split, teacher)
    return accuracy_by_tag(rows, labels, seed)


def predicted_labels(frame: pd.DataFrame) -> pd.Series:
    """The option each answer picked (None when it gave no letter)."""
    return pd.Series([options[LETTERS.index(p)] if isinstance(p, str) and p else None
                      for options, p in zip(frame["options"], frame["predicted"])], index=frame.index)


def present_distractor_questions(questions: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """The questions one of whose distractors is another label of the same clip, with the tags."""
    found = present_distractors(questions, labels)
    chosen = questions.loc[found.map(len) > 0, ["clip", "label"]].copy()
    tag_of = labels.set_index(["clip", "label"])["modality"]
    chosen["answer tag"] = answer_tags(chosen, labels)
    chosen["present distractor (tag)"] = [", ".join(f"{o} ({tag_of.get((c, o), '?')})" for o in found[i]) for i, c in zip(chosen.index, chosen["clip"])]
    return chosen.reset_index(drop=True)


def multilabel_scores(answers: dict[str, pd.DataFrame], labels: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Accuracy both ways: the paper's (only VGGSound's label is right) and multi-label (any
    label of the clip is right), over all questions and over those with a present distractor."""
    present = present_labels(labels)
    rows = {}
    for row, frame in answers.items():
        picked = predicted_labels(frame)
        any_label = pd.Series([p is not None and (p == lab or p in present.get(c, ())) for p, lab, c in
                               zip(picked, frame["label"], frame["clip"])], index=frame.index)
        with_present = present_distractors(frame, labels).map(len) > 0
        rows[row] = {"all: paper": _cell(frame["correct"], seed), "all: any label": _cell(any_label, seed),
                     "present distractor: paper": _cell(frame.loc[with_present, "correct"], seed),
                     "present distractor: any label": _cell(any_label[with_present], seed),
                     "answers changed": int((any_label & ~frame["correct"]).sum())}
    return pd.DataFrame(rows).T.rename_axis("row")


def flag_accuracy(answers: dict[str, pd.DataFrame], labels: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Accuracy on clips with and without each meta flag (background music, static image,
    voice-over); where no clip carries a flag, one row saying so."""
    if not flags_modelled(labels):
        return pd.DataFrame({"flags": ["not measurable in this profile: no clip carries a flag (the embedded world draws none)"]})
    flags = clip_flags(labels)
    rows = {}
    for row, frame in answers.items():
        annotated = frame[frame["clip"].isin(flags.index)]
        marks = flags.reindex(annotated["clip"]).to_numpy()
        cells = {}
        for k, flag in enumerate(FLAGS):
            name = flag.replace("_", " ")
            cells[f"with {name}"] = _cell(annotated.loc[marks[:, k], "correct"], seed)
            cells[f"without {name}"] = _cell(annotated.loc[~marks[:, k], "correct"], seed)
        rows[row] = cells
    return pd.DataFrame(rows).T.rename_axis("row")
