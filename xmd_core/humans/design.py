"""Trial design of the human study: C classes x K clips x 3 conditions over P participants.

The paper: 30 classes x 50 clips x 3 conditions = 4,500 trials, 100 participants x 45 trials.
A design is *balanced* when

- every (clip, condition) is answered exactly once across the panel;
- every participant gets the same number of trials, equally many per condition;
- no participant meets the same clip twice (in any condition).

With N = C x K clips this is possible exactly when N is a multiple of P (each participant then
gets N / P clips per condition, 3 N / P trials) and P >= 3 (a clip's three conditions need three
different people). :func:`check_design` says which of these fails.

Construction (a cyclic Latin square over blocks): the clips are put in a seeded order that
cycles through the classes, cut into P consecutive blocks of m = N / P clips, and participant p
answers block p under the first condition, block p + 1 under the second and block p + 2 under
the third (mod P). Block b is thus answered under condition j by participant b - j, once; a
participant's three blocks are different blocks, so no clip comes twice; and consecutive blocks
mix the classes. Each participant's trials are then shuffled (seeded per participant).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import Profile
from ..paper import paper_numbers

CONDITIONS = ("audio", "silent_video", "sounded_video")
CONDITION_NAMES = {"audio": "ears", "silent_video": "eyes", "sounded_video": "ears+eyes"}
DESIGN_COLUMNS = ["participant", "trial", "clip", "label", "condition", "options", "answer", "path"]
PAPER = {"classes": 30, "clips_per_class": 50, "participants": 100, "trials_per_participant": 45}


class DesignError(ValueError):
    """A design that cannot be balanced, or a design table that is not balanced."""


@dataclass(frozen=True)
class DesignSize:
    classes: int
    clips_per_class: int
    participants: int
    conditions: int = len(CONDITIONS)

    @property
    def clips(self) -> int:
        return self.classes * self.clips_per_class

    @property
    def trials(self) -> int:
        return self.clips * self.conditions

    @property
    def trials_per_participant(self) -> int:
        return self.trials // self.participants

    @property
    def per_condition(self) -> int:
        return self.clips // self.participants

    def describe(self) -> str:
        return (
            f"{self.classes} classes x {self.clips_per_class} clips x {self.conditions} conditions = {self.trials:,} trials, "
            f"{self.participants} participants x {self.trials_per_participant} trials ({self.per_condition} per condition)"
        )


def valid_participant_counts(n_clips: int, n_conditions: int = len(CONDITIONS)) -> list[int]:
    """Every panel size that balances `n_clips` clips: the divisors of `n_clips` that are at least
    `n_conditions`."""
    return [p for p in range(n_conditions, n_clips + 1) if n_clips % p == 0]


def choose_participants(n_clips: int, trials_per_participant: int = PAPER["trials_per_participant"], n_conditions: int = len(CONDITIONS)) -> int:
    """The balancing panel size whose trials per participant come closest to the wanted number
    (ties go to the larger panel). Raises DesignError when no panel size balances."""
    valid = valid_participant_counts(n_clips, n_conditions)
    if not valid:
        raise DesignError(f"{n_clips} clips cannot be shared by at least {n_conditions} participants; use at least {n_conditions} clips")
    return min(valid, key=lambda p: (abs(n_conditions * n_clips / p - trials_per_participant), -p))


def check_design(
    classes: int = PAPER["classes"],
    clips_per_class: int = PAPER["clips_per_class"],
    participants: int = PAPER["participants"],
    n_conditions: int = len(CONDITIONS),
) -> DesignSize:
    """The design's sizes when it can be balanced; otherwise DesignError listing every reason
    and the panel sizes that would work."""
    for name, value in (("classes", classes), ("clips_per_class", clips_per_class), ("participants", participants), ("n_conditions", n_conditions)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise DesignError(f"{name} must be a positive integer (got {value!r})")
    size = DesignSize(int(classes), int(clips_per_class), int(participants), int(n_conditions))
    n, t, p = size.clips, size.trials, size.participants
    problems = []
    if t % p:
        problems.append(f"{t:,} trials cannot be split evenly among {p} participants ({t:,} / {p} = {t / p:.2f})")
    elif n % p:
        problems.append(
            f"each participant would get {t // p} trials, which is not divisible by the {n_conditions} conditions "
            f"(so the conditions could not be balanced within a participant)"
        )
    if p < n_conditions:
        problems.append(
            f"with {p} participant(s) someone would meet a clip twice: each clip is shown under {n_conditions} "
            f"conditions, which needs {n_conditions} different participants"
        )
    if problems:
        valid = valid_participant_counts(n, n_conditions)
        near = sorted(valid, key=lambda q: (abs(q - p), q))[:5]
        hint = (
            f"; panel sizes that balance {n:,} clips: {', '.join(map(str, sorted(near)))}"
            f" (any divisor of {n:,} that is at least {n_conditions})"
            if valid
            else f"; no panel size balances {n:,} clips"
        )
        raise DesignError(f"cannot balance {classes} classes x {clips_per_class} clips x {n_conditions} conditions over {p} participants: " + "; ".join(problems) + hint)
    return size


def select_clips(clips: pd.DataFrame, labels: Sequence[str], clips_per_class: int | None = None, seed: int = 0) -> pd.DataFrame:
    """K clips of each class in `labels` from a split's clip table (joined to its questions).

    `clips_per_class` None takes as many as the scarcest class has, so that every class gets the
    same number. The choice is seeded and does not depend on the table's row order.
    """
    missing_cols = [c for c in ("clip", "label", "options", "answer") if c not in clips.columns]
    if missing_cols:
        raise DesignError(f"the clip table lacks column(s) {missing_cols} (join the clips to their questions first)")
    labels = list(dict.fromkeys(labels))
    if not labels:
        raise DesignError("no classes given")
    counts = clips[clips["label"].isin(labels)].groupby("label").size().reindex(labels, fill_value=0)
    absent = counts[counts == 0].index.tolist()
    if absent:
        raise DesignError(f"class(es) without clips in this table: {absent}")
    k = int(counts.min()) if clips_per_class is None else int(clips_per_class)
    if k < 1:
        raise DesignError(f"clips_per_class must be positive (got {clips_per_class!r})")
    short = counts[counts < k]
    if len(short):
        raise DesignError(f"{k} clips per class asked, but these classes have fewer: " + ", ".join(f"{lab} ({n})" for lab, n in short.items()))
    rng = np.random.default_rng([seed, 1])
    parts = []
    for label in labels:
        rows = clips[clips["label"] == label].sort_values("clip")
        parts.append(rows.iloc[np.sort(rng.choice(len(rows), size=k, replace=False))])
    return pd.concat(parts, ignore_index=True)


def _participant_ids(n: int) -> list[str]:
    width = max(3, len(str(n)))
    return [f"P{i + 1:0{width}d}" for i in range(n)]


def build_design(clips: pd.DataFrame, participants: int, seed: int = 0, conditions: Sequence[str] = CONDITIONS) -> pd.DataFrame:
    """The balanced design for the chosen clips (one row per clip with label, options, answer and,
    when present, path): columns participant, trial (1.. per participant, the presentation
    order), clip, label, condition, options, answer, path."""
    conditions = tuple(conditions)
    if len(set(conditions)) != len(conditions) or not conditions:
        raise DesignError(f"conditions must be distinct and non-empty (got {conditions})")
    if clips["clip"].duplicated().any():
        raise DesignError(f"clip(s) listed twice: {clips.loc[clips['clip'].duplicated(), 'clip'].unique()[:5].tolist()}")
    per_class = clips.groupby("label").size()
    if per_class.nunique() != 1:
        raise DesignError("every class needs the same number of clips; got " + ", ".join(f"{lab}: {n}" for lab, n in per_class.items()))
    size = check_design(len(per_class), int(per_class.iloc[0]), participants, len(conditions))
    rng = np.random.default_rng([seed, 2])

    # clips in an order that cycles through the classes: round r holds the r-th clip of every class
    class_order = per_class.index.to_numpy()[rng.permutation(len(per_class))]
    by_class = {lab: rows.sort_values("clip").index[rng.permutation(len(rows))] for lab, rows in clips.groupby("label")}
    ordered = clips.loc[[by_class[lab][r] for r in range(size.clips_per_class) for lab in class_order]].reset_index(drop=True)
    if "path" not in ordered.columns:
        ordered["path"] = ""

    m, p_count = size.per_condition, size.participants
    ids = _participant_ids(p_count)
    parts = []
    for p in range(p_count):
        own = []
        for j, condition in enumerate(conditions):
            block = (p + j) % p_count
            own.append(ordered.iloc[block * m : (block + 1) * m].assign(condition=condition))
        rows = pd.concat(own, ignore_index=True)
        order = np.random.default_rng([seed, 3, p]).permutation(len(rows))
        rows = rows.iloc[order].reset_index(drop=True)
        parts.append(rows.assign(participant=ids[p], trial=np.arange(1, len(rows) + 1)))
    design = pd.concat(parts, ignore_index=True)
    design["options"] = design["options"].map(list)
    design = design[DESIGN_COLUMNS]
    validate_design(design, conditions)
    return design


def validate_design(design: pd.DataFrame, conditions: Sequence[str] = CONDITIONS) -> None:
    """DesignError naming the first rule a design table breaks (see the module doc)."""
    missing = [c for c in DESIGN_COLUMNS if c not in design.columns]
    if missing:
        raise DesignError(f"the design lacks column(s) {missing}")
    bad = design[~design["condition"].isin(conditions)]
    if len(bad):
        raise DesignError(f"unknown condition {bad['condition'].iloc[0]!r} (row {bad.index[0]}); known: {', '.join(conditions)}")
    twice = design[design.duplicated(["clip", "condition"], keep=False)]
    if len(twice):
        r = twice.iloc[0]
        raise DesignError(f"clip {r['clip']} under {r['condition']} is answered {len(twice[(twice.clip == r['clip']) & (twice.condition == r['condition'])])} times")
    cells = pd.MultiIndex.from_product([design["clip"].unique(), conditions])
    have = pd.MultiIndex.from_frame(design[["clip", "condition"]])
    absent = cells.difference(have)
    if len(absent):
        raise DesignError(f"{len(absent)} (clip, condition) cell(s) are never answered, e.g. {absent[0]}")
    met = design[design.duplicated(["participant", "clip"], keep=False)]
    if len(met):
        r = met.iloc[0]
        raise DesignError(f"participant {r['participant']} meets clip {r['clip']} twice")
    per_participant = design.groupby("participant").size()
    if per_participant.nunique() != 1:
        raise DesignError(f"participants get different numbers of trials: {per_participant.value_counts().to_dict()} (trials: participants)")
    per_condition = design.groupby(["participant", "condition"]).size().unstack(fill_value=0)
    uneven = per_condition[per_condition.nunique(axis=1) > 1]
    if len(uneven):
        raise DesignError(f"participant {uneven.index[0]} is not balanced over conditions: {uneven.iloc[0].to_dict()}")
    for participant, trials in design.groupby("participant")["trial"]:
        if sorted(trials) != list(range(1, len(trials) + 1)):
            raise DesignError(f"participant {participant}'s trial numbers are not 1..{len(trials)}")


def design_summary(design: pd.DataFrame) -> pd.DataFrame:
    """The design's sizes in one small table, the paper's beside (rows of result human_study in
    the paper's numbers; NaN where the data file holds no such row)."""
    n_participants = design["participant"].nunique()
    this = {
        "classes": design["label"].nunique(),
        "clips per class": int(design.drop_duplicates("clip").groupby("label").size().min()),
        "conditions": design["condition"].nunique(),
        "trials": len(design),
        "participants": n_participants,
        "trials per participant": len(design) // n_participants,
    }
    paper = paper_numbers("human_study").set_index("row")["value"]
    return pd.DataFrame({"this run": this, "paper": {key: paper.get(key, np.nan) for key in this}})


def coverage(trials: pd.DataFrame, design: pd.DataFrame) -> pd.DataFrame:
    """Per participant of the design or the trials: trials planned, answered, skipped, still to do,
    and answered trials that the design does not hold (another design, or a typo in an id)."""
    key = ["participant", "clip", "condition"]
    planned = design.groupby("participant").size().rename("planned")
    merged = trials[key + ["response"]].merge(design[key].assign(in_design=True), on=key, how="left")
    merged["in_design"] = merged["in_design"].astype("boolean").fillna(False).astype(bool)
    answered = merged[merged["in_design"]].groupby("participant").size().rename("answered")
    skipped = merged[merged["in_design"] & merged["response"].isna()].groupby("participant").size().rename("skipped")
    foreign = merged[~merged["in_design"]].groupby("participant").size().rename("not in design")
    table = pd.concat([planned, answered, skipped, foreign], axis=1).fillna(0).astype(int)
    table["to do"] = table["planned"] - table["answered"]
    table.index.name = "participant"
    return table.sort_index()


def design_for_study(
    profile: Profile,
    clips: pd.DataFrame,
    labels: Sequence[str],
    participants: int = 0,
    clips_per_class: int | None = None,
    trials_per_participant: int = PAPER["trials_per_participant"],
    seed: int = 0,
) -> pd.DataFrame:
    """The profile's human-study design, stored where the test widget reads it.

    `clips` is the analysis split joined to its questions; `labels` the Figure-1 classes.
    `clips_per_class` None takes every analysis clip the scarcest class has; `participants` 0
    picks the balancing panel size closest to `trials_per_participant` trials each.
    """
    chosen = select_clips(clips, labels, clips_per_class, seed)
    n_participants = participants or choose_participants(len(chosen), trials_per_participant)
    design = build_design(chosen, n_participants, seed)
    save_design(design, design_path(profile))
    return design


def study_dir(profile: Profile) -> Path:
    """Where a profile's human study lives: the design, the simulated trials, participants' files."""
    return profile.results_dir / "human_study"


def design_path(profile: Profile) -> Path:
    return study_dir(profile) / "design.parquet"


def trials_dir(profile: Profile) -> Path:
    """The folder the listening/viewing test writes each participant's trials file into."""
    return study_dir(profile) / "trials"


def save_design(design: pd.DataFrame, path: str | Path) -> Path:
    """Write a design table (Parquet), atomically."""
    validate_design(design, tuple(dict.fromkeys(design["condition"])))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    design.to_parquet(tmp)
    tmp.replace(path)
    return path


def load_design(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no design at {path}: run the human-study notebook (02_human_study) once to write it")
    design = pd.read_parquet(path)
    design["options"] = design["options"].map(list)
    validate_design(design, tuple(dict.fromkeys(design["condition"])))
    return design
