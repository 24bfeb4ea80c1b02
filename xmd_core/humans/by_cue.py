"""LLMs and the panel side by side, split by whether each clip's input carries its class
(embedded world only; the human-study chapter and the findings chapter's F3).

The world records for every clip whether its class can be heard (`audible`) and seen
(`visible`). Under each condition the input carries the class itself on some clips (audio:
audible ones; silent video: visible ones; sounded video: either) and only the venue and
background on the others. Splitting the Figure-1 clips this way shows where the panel and the
LLMs part: on clips with the class, recognising it (with the world's domain shift, the audio
expert pre-trained on clean recordings meets wild ones; the panel is not modelled as hurt by
the recording chain); on clips without, guessing from the venue (the panel is modelled to use
it; an expert only where its training taught it).
"""

from __future__ import annotations

import pandas as pd

from .. import stats
from ..config import Profile
from .analysis import LLM_COLUMNS, LLM_NAMES, llm_predictions, who
from .design import CONDITION_NAMES
from .panel import cue_present, world_clip_info
from .schema import validate_trials

WITH_CLASS, WITHOUT_CLASS = "the class itself", "only venue and background"


def _with_cue(rows: pd.DataFrame, draws: pd.DataFrame) -> pd.DataFrame:
    """`rows` (clip, condition, correct, ...) with column `cue`: what the input carries."""
    missing = sorted(set(rows["clip"]) - set(draws["clip"]))
    if missing:
        raise ValueError(f"{len(missing)} clip(s) not in the world's clip table, e.g. {missing[0]!r}: the results and the world disagree")
    info = draws.set_index("clip").loc[rows["clip"]]
    present = cue_present(rows["condition"].to_numpy(), info["audible"].to_numpy(bool), info["visible"].to_numpy(bool))
    return rows.assign(cue=[WITH_CLASS if p else WITHOUT_CLASS for p in present])


def _accuracy(rows: pd.DataFrame, cluster: str | None, seed: int) -> pd.DataFrame:
    table = stats.accuracy_table(rows, by=["condition", "cue"], cluster=cluster, seed=seed)
    return table.set_index(["condition", "cue"])


def llms_and_panel_by_cue(profile: Profile, trials: pd.DataFrame, labels: list[str], seed: int = 0) -> pd.DataFrame:
    """Per condition and per what the input carries, on the Figure-1 classes `labels` (analysis
    split): clips, each LLM's accuracy (%, clips resampled) and the panel's (%, participants
    resampled), with the LLM-minus-panel difference in points."""
    trials = validate_trials(trials)
    draws = world_clip_info(profile)
    predictions = llm_predictions(profile)
    predictions = predictions[predictions["label"].isin(labels)]
    llm = _accuracy(_with_cue(predictions, draws), None, seed)
    panel = _accuracy(_with_cue(trials[trials["label"].isin(labels)], draws), "participant", seed)
    name = who(trials)
    names = {condition: LLM_NAMES[column] for column, (_, condition) in LLM_COLUMNS.items()}
    rows = []
    order = [(condition, cue) for condition in llm.index.unique("condition") for cue in (WITH_CLASS, WITHOUT_CLASS)]
    for condition, cue in [key for key in order if key in llm.index]:
        r = llm.loc[(condition, cue)]
        row = {"condition": CONDITION_NAMES[condition], "the input carries": cue, "clips": int(r["n"]), "LLM": names[condition],
               "LLM (%)": stats.percent_cell(r["acc"], r["low"], r["high"])}
        if (condition, cue) in panel.index:
            h = panel.loc[(condition, cue)]
            row |= {f"{name} (%)": stats.percent_cell(h["acc"], h["low"], h["high"]), "LLM - panel (points)": round(100 * (r["acc"] - h["acc"]), 1)}
        else:
            row |= {f"{name} (%)": "no trials of this kind", "LLM - panel (points)": "no trials of this kind"}
        rows.append(row)
    return pd.DataFrame(rows)
