"""Is the clip's venue in what the student's language model receives? (chapter 06, the gain split)

On clips whose audio holds no sound of their class, only the venue and the background tell the
class, so a student can learn to answer there from its teacher only if its frozen towers pass
the venue on. :func:`venue_readout` answers that with a linear probe: a multinomial logistic
regression (scikit-learn) from each clip's media summary (`common_shift.clip_summaries`: the
media tokens' mean as the language model receives them) to the clip's venue, scored by 5-fold
cross-validation, on wild finetune clips with and without their class's own signal. Beside it
stands the share of the commonest venue: what a probe that read nothing would score.

LoRA trains the language model only, so towers and projector, and with them these summaries,
are the same before and after distillation: the probe reads the student's input either way.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, cross_val_score

from .common_shift import clip_summaries, world_draws
from .config import Profile
from .models.adapters import Adapter
from .signal_split import CARRIED, NOT_CARRIED, own_draw
from .study_results import load_inputs

#: Wild finetune clips per group (with and without the class's own signal) that the probe reads.
CLIPS_PER_GROUP = 600
FOLDS = 5


def unmeasurable_reason(profile: Profile) -> str | None:
    """Why the probe cannot run on this profile, or None when it can."""
    if profile.data.source != "world":
        return "only the embedded world records each clip's venue"
    return None


def readout_clips(profile: Profile, student: str, per_group: int = CLIPS_PER_GROUP, seed: int = 0) -> pd.DataFrame:
    """Up to `per_group` finetune clips whose `student`'s input carries their class and as many
    whose input does not, with columns `carried` (bool), `venue` and `path`."""
    clips = load_inputs(profile).clips
    clips = clips[clips["split"] == "finetune"]
    draws = world_draws(profile, clips)
    clips = clips.assign(carried=draws[own_draw(student)].astype(bool).to_numpy(), venue=draws["venue"].astype(object).to_numpy())
    return clips.sample(frac=1.0, random_state=seed).groupby("carried").head(per_group).sort_values("clip").reset_index(drop=True)


def probe_accuracy(summaries: np.ndarray, venues: np.ndarray, folds: int = FOLDS, seed: int = 0) -> float:
    """Cross-validated accuracy (%) of a linear probe from `summaries` (N, H) to `venues` (N,)."""
    if len(venues) < folds:
        raise ValueError(f"a {folds}-fold probe needs at least {folds} clips; got {len(venues)}")
    if len(set(venues)) < 2:
        raise ValueError(f"every clip is at venue {venues[0]!r}: there is nothing to read")
    probe = LogisticRegression(max_iter=2000)
    scores = cross_val_score(probe, summaries, venues, cv=KFold(n_splits=folds, shuffle=True, random_state=seed))
    return 100 * float(scores.mean())


def readout_row(summaries: np.ndarray, venues: np.ndarray, seed: int = 0) -> dict:
    """One group's row of :func:`venue_readout`; NaN read where the group is too small to probe."""
    probed = len(venues) >= FOLDS and len(set(venues)) >= 2
    return {
        "clips": len(venues),
        "venue read (%)": probe_accuracy(summaries, venues, seed=seed) if probed else float("nan"),
        "commonest venue (%)": 100 * pd.Series(venues).value_counts(normalize=True).iloc[0] if len(venues) else float("nan"),
        "venues": len(set(venues)),
    }


def venue_readout(profile: Profile, adapter: Adapter, per_group: int = CLIPS_PER_GROUP, seed: int = 0, progress: bool = True) -> pd.DataFrame:
    """Per group of clips (its input carries the class itself, or only the venue and
    background), how often a linear probe reads the clip's venue from `adapter`'s media summaries
    (%), beside the commonest venue's share. A group too small to probe (fewer than `FOLDS` clips,
    or one venue) shows NaN there, and `attrs["too small"]` names it."""
    reason = unmeasurable_reason(profile)
    if reason:
        raise ValueError(f"venue_readout is not measurable in profile {profile.name!r}: {reason}")
    clips = readout_clips(profile, adapter.name, per_group, seed)
    summaries = clip_summaries(profile, adapter, clips, progress).numpy()
    rows = {}
    for carried, name in ((False, NOT_CARRIED), (True, CARRIED)):
        group = (clips["carried"] == carried).to_numpy()
        rows[name] = readout_row(summaries[group], clips.loc[group, "venue"].to_numpy(), seed)
    table = pd.DataFrame.from_dict(rows, orient="index").rename_axis(f"student's input ({own_draw(adapter.name)})")
    table.attrs["too small"] = [name for name, row in rows.items() if np.isnan(row["venue read (%)"])]
    return table


def student_readout(profile: Profile, student: str) -> pd.DataFrame:
    """:func:`venue_readout` of `student`'s checkpoint, quietly (the book shows the table only)."""
    from .models.registry import load_model_quietly

    return venue_readout(profile, load_model_quietly(student, profile), progress=False)


def readout_sentence(table: pd.DataFrame, student: str) -> str:
    """The table's reading, in words (Markdown), naming any group too small to probe."""
    row = table.loc[NOT_CARRIED]
    if np.isnan(row["venue read (%)"]):
        reading = f"Too few clips without their class's own signal ({int(row['clips'])}, or one venue) to probe the venue there."
    else:
        reading = (f"On {int(row['clips'])} wild clips whose input holds {NOT_CARRIED}, a linear probe reads the venue from what "
                   f"{student}'s language model receives on **{row['venue read (%)']:.1f}%** (5-fold cross-validated; the "
                   f"commonest of the {int(row['venues'])} venues is {row['commonest venue (%)']:.1f}%). Whether the student learned "
                   f"to answer from it is its gain on those clips in the table above, set against the control world's, where the "
                   f"venue says nothing of the class.")
    small = [name for name in table.index if name != NOT_CARRIED and np.isnan(table.loc[name, "venue read (%)"])]
    return reading + "".join(f" Not probed, with fewer than {FOLDS} clips or one venue: the clips whose input {name}." for name in small)
