"""Statistics of the human study, over any trials table in the schema of :mod:`.schema`.

- accuracy per condition with intervals clustered by participant (whole participants resampled);
- a mixed-effects logistic regression: condition as fixed effect, participant and clip as random
  effects (statsmodels' ``BinomialBayesMixedGLM``, variational Bayes);
- class-wise accuracy for ears, eyes, and ears and eyes;
- the alignment with the LLMs: of the classes the audio LLM recognises better (worse) than the
  visual LLM, in how many do human ears beat human eyes (eyes beat ears), with a binomial test; the
  rank correlation of the class-wise audio-minus-visual gaps of LLMs and humans, with a bootstrap
  interval; the complete Figure 1.

A skipped trial counts as a wrong answer. Accuracies are fractions here and percentages in the
tables meant for the book.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import analysis as llm_analysis
from .. import stats
from ..config import Profile
from ..paper import paper_numbers
from .design import CONDITION_NAMES, CONDITIONS
from .schema import validate_trials

# The LLM columns of Figure 1: column -> (model, condition), as in the analysis chapter.
LLM_COLUMNS = {"audio": ("qwen2-audio", "audio"), "visual": ("qwen2-vl", "silent_video"), "audio-visual": ("qwen2.5-omni", "sounded_video")}
LLM_NAMES = {"audio": "Qwen2-Audio", "visual": "Qwen2-VL", "audio-visual": "Qwen2.5-Omni"}
# The human columns: condition -> column of the class-wise table.
HUMAN_COLUMNS = {"audio": "human ears", "silent_video": "human eyes", "sounded_video": "human ears+eyes"}
PAPER_HUMAN_ROWS = {"audio": "Humans ears", "silent_video": "Humans eyes", "sounded_video": "Humans ears+eyes"}
# rows of the paper's numbers (result "figure1") that the alignment analysis shows beside its own
PAPER_AUDIO_ALIGNED = "audio-better classes also better by human ears"
PAPER_VISUAL_ALIGNED = "visual-better classes also better by human eyes"
PAPER_SHORTFALL = "Qwen2-Audio below human ears in the visual-better classes"


def paper_count(*rows: str) -> str:
    """The paper's count for one or more "k of n classes" rows of result figure1, summed, as
    "k of n"; "not in paper_numbers.csv" for a row the data file does not hold."""
    table = paper_numbers("figure1").set_index("row")
    absent = [r for r in rows if r not in table.index]
    if absent:
        return f"not in paper_numbers.csv: {', '.join(absent)}"
    k = sum(float(table.loc[r, "value"]) for r in rows)
    n = 0
    for r in rows:
        match = re.search(r"of (\d+)", str(table.loc[r, "column"]))
        if match is None:
            raise ValueError(f"paper row {r!r} does not say of how many classes (column {table.loc[r, 'column']!r})")
        n += int(match.group(1))
    return f"{k:g} of {n}"


def who(trials: pd.DataFrame) -> str:
    """How the book names the panel: "humans", "simulated humans", or a mix."""
    sources = set(trials["source"])
    if sources == {"human"}:
        return "humans"
    if sources == {"simulated"}:
        return "simulated humans"
    return "humans + simulated"


# --------------------------------------------------------------------------------------------
# the LLM side (read from the analysis chapter's predictions)


def llm_predictions(profile: Profile, split: str = "analysis") -> pd.DataFrame:
    """The predictions of Qwen2-Audio (audio), Qwen2-VL (silent video) and Qwen2.5-Omni (sounded
    video) on `split`, from the original models' finished prediction runs (never a distilled
    student's: its runs carry the same model and condition)."""
    runs = llm_analysis.finished_runs(profile)
    if runs.empty:
        raise FileNotFoundError(f"no finished prediction runs under {profile.results_dir / 'predictions'}: run the analysis chapter (01_analysis) first")
    runs = llm_analysis.original_runs(runs, "letters")
    runs = runs[runs["split"] == split]
    wanted = set(LLM_COLUMNS.values())
    have = set(zip(runs["model"], runs["condition"]))
    if not wanted <= have:
        raise FileNotFoundError(f"missing {split} predictions of {sorted(wanted - have)} under {profile.results_dir / 'predictions'}: run the analysis chapter (01_analysis) first")
    runs = runs[[(m, c) in wanted for m, c in zip(runs["model"], runs["condition"])]]
    return llm_analysis.collect(profile, runs)


def llm_classwise(profile: Profile, split: str = "analysis") -> pd.DataFrame:
    """Class-wise accuracy of the three Figure-1 LLMs on `split` (:func:`llm_predictions`)."""
    return llm_analysis.classwise(llm_predictions(profile, split), split, LLM_COLUMNS)


def figure1_classes(llm_wide: pd.DataFrame, max_per_row: int = 10) -> pd.DataFrame:
    """The Figure 1 classes (label, row, gap), chosen from the LLM results only: `max_per_row`
    per row, fewer when the split has fewer than 3 x `max_per_row` classes."""
    per_row = min(max_per_row, len(llm_wide) // 3)
    if per_row < 1:
        raise ValueError(f"Figure 1 needs at least 3 classes; the LLM table has {len(llm_wide)}")
    return stats.select_figure1_classes(llm_wide.reset_index(), "audio", "visual", n_per_row=per_row)


# --------------------------------------------------------------------------------------------
# accuracy


def condition_accuracy(trials: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Accuracy (%) per condition with a 95% cluster-bootstrap interval over participants, trials,
    participants and skipped trials, and the paper's number beside (its 30 classes)."""
    trials = validate_trials(trials)
    table = stats.accuracy_table(trials, by="condition", cluster="participant", n_boot=n_boot, seed=seed)
    table = table.set_index("condition").reindex([c for c in CONDITIONS if c in set(table["condition"])])
    paper = paper_numbers("figure1").set_index("row")["value"]
    out = pd.DataFrame(
        {
            "humans": [CONDITION_NAMES[c] for c in table.index],
            "input": table.index,
            f"accuracy (%), {who(trials)}": (100 * table["acc"]).round(1).to_numpy(),
            "95% CI (participants resampled)": [f"[{100 * lo:.1f}, {100 * hi:.1f}]" for lo, hi in zip(table["low"], table["high"])],
            "trials": table["n"].astype(int).to_numpy(),
            "participants": table["n_clusters"].astype(int).to_numpy(),
            "skipped": trials.groupby("condition")["response"].apply(lambda r: int(r.isna().sum())).reindex(table.index).to_numpy(),
            "paper (%)": [paper.get(PAPER_HUMAN_ROWS[c], np.nan) for c in table.index],
        }
    )
    return out


def participant_summary(trials: pd.DataFrame) -> pd.DataFrame:
    """Per participant: trials, accuracy per condition (%), skipped, median response time."""
    trials = validate_trials(trials)
    acc = trials.pivot_table(index="participant", columns="condition", values="correct", aggfunc="mean").mul(100)
    acc = acc.reindex(columns=[c for c in CONDITIONS if c in acc.columns]).rename(columns=lambda c: f"{CONDITION_NAMES[c]} (%)")
    grouped = trials.groupby("participant")
    out = pd.DataFrame({"trials": grouped.size(), "skipped": grouped["response"].apply(lambda r: int(r.isna().sum())), "median rt (s)": grouped["rt_s"].median()})
    return out.join(acc).round(1)


def response_times(trials: pd.DataFrame) -> pd.DataFrame:
    """Median and quartiles of the response time (s) per condition, right and wrong answers apart."""
    trials = validate_trials(trials)
    grouped = trials.groupby(["condition", "correct"])["rt_s"]
    out = pd.DataFrame({"median": grouped.median(), "q25": grouped.quantile(0.25), "q75": grouped.quantile(0.75), "trials": grouped.size()})
    return out.round(2)


# --------------------------------------------------------------------------------------------
# the mixed-effects logistic regression


@dataclass(frozen=True)
class MixedModel:
    fixed: pd.DataFrame  # term, log_odds, posterior_sd, low, high, odds_ratio
    variance: pd.DataFrame  # component, sd, low, high (of the random-effect standard deviation)
    reference: str
    n_trials: int
    n_participants: int
    n_clips: int

    def effect(self, condition: str) -> float:
        """The fitted log-odds of `condition` relative to the reference condition."""
        return float(self.fixed.loc[f"condition: {condition}", "log_odds"])


def mixed_model(trials: pd.DataFrame, reference: str = "audio", seed: int = 0) -> MixedModel:
    """correct ~ condition + (1 | participant) + (1 | clip), logistic, fitted by variational Bayes
    (statsmodels ``BinomialBayesMixedGLM.fit_vb`` with L-BFGS-B; priors: fixed effects N(0, 2^2), log-SDs of the
    random effects N(0, 1)). Intervals are posterior mean +- 1.96 posterior SD; for a random-effect
    SD they are taken on the log scale and exponentiated."""
    from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM

    trials = validate_trials(trials)
    present = [c for c in CONDITIONS if c in set(trials["condition"])]
    if reference not in present:
        raise ValueError(f"reference condition {reference!r} has no trials; present: {present}")
    if len(present) < 2:
        raise ValueError("the regression needs at least two conditions")
    data = pd.DataFrame(
        {
            "correct": trials["correct"].astype(float).to_numpy(),
            "condition": pd.Categorical(trials["condition"], categories=[reference] + [c for c in present if c != reference]),
            "participant": trials["participant"].to_numpy(),
            "clip": trials["clip"].to_numpy(),
        }
    )
    model = BinomialBayesMixedGLM.from_formula(
        "correct ~ condition", {"participant": "0 + C(participant)", "clip": "0 + C(clip)"}, data
    )
    result = model.fit_vb(fit_method="L-BFGS-B", rng=np.random.default_rng(seed))
    names = [("intercept" if n == "Intercept" else "condition: " + n.split("[T.")[1].rstrip("]")) for n in model.exog_names]
    mean, sd = np.asarray(result.fe_mean), np.asarray(result.fe_sd)
    fixed = pd.DataFrame(
        {"log_odds": mean, "posterior_sd": sd, "low": mean - 1.96 * sd, "high": mean + 1.96 * sd, "odds_ratio": np.exp(mean)},
        index=pd.Index(names, name="term"),
    )
    vmean, vsd = np.asarray(result.vcp_mean), np.asarray(result.vcp_sd)
    variance = pd.DataFrame(
        {"sd": np.exp(vmean), "low": np.exp(vmean - 1.96 * vsd), "high": np.exp(vmean + 1.96 * vsd)},
        index=pd.Index(list(model.vcp_names), name="random effect (log-odds SD)"),
    )
    return MixedModel(fixed, variance, reference, len(data), int(data["participant"].nunique()), int(data["clip"].nunique()))


# --------------------------------------------------------------------------------------------
# class-wise accuracy and the alignment with the LLMs


def human_classwise(trials: pd.DataFrame) -> pd.DataFrame:
    """Wide class-wise accuracy (0-1): index label, columns human ears, human eyes, human
    ears+eyes, and `n` (trials per class and condition)."""
    trials = validate_trials(trials)
    wide = stats.classwise_accuracy(trials, model_col="condition")
    wide = wide.rename(columns=HUMAN_COLUMNS)
    return wide[[HUMAN_COLUMNS[c] for c in CONDITIONS if HUMAN_COLUMNS[c] in wide.columns] + ["n"]]


def alignment_table(llm_wide: pd.DataFrame, human_wide: pd.DataFrame, chosen: pd.DataFrame) -> pd.DataFrame:
    """Per Figure-1 class: its row, the LLM accuracies and audio-minus-visual gap, the human ones
    and ears-minus-eyes gap, whether the gaps share a sign, and whether the audio LLM falls short
    of human ears. Classes the panel never answered under both ears and eyes are dropped."""
    table = chosen[["label", "row"]].set_index("label")
    table = table.join(llm_wide[["audio", "visual", "audio-visual"]]).join(human_wide.drop(columns="n"))
    table["gap LLM"] = table["audio"] - table["visual"]
    table["gap humans"] = table[HUMAN_COLUMNS["audio"]] - table[HUMAN_COLUMNS["silent_video"]]
    table = table.dropna(subset=["gap LLM", "gap humans"])
    table["same direction"] = (np.sign(table["gap LLM"]) == np.sign(table["gap humans"])) & (table["gap humans"] != 0)
    table["audio LLM below human ears"] = table["audio"] < table[HUMAN_COLUMNS["audio"]]
    return table


def alignment(llm_wide: pd.DataFrame, human_wide: pd.DataFrame, chosen: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> dict[str, pd.DataFrame | dict]:
    """The paper's alignment analysis.

    Returns ``per_class`` (:func:`alignment_table`), ``counts`` (per row and overall: classes,
    same direction, one-sided binomial p-value from :func:`stats.sign_agreement`, the paper's
    count; and the audio LLM's shortfall to human ears in the visual-better row) and
    ``correlation`` (Spearman's rho of the LLM and human gaps over the Figure-1 classes with a
    bootstrap interval over classes; rho is undefined, and reported so, when a side is constant).
    """
    per_class = alignment_table(llm_wide, human_wide, chosen)
    paper_rows = {"audio better": PAPER_AUDIO_ALIGNED, "visual better": PAPER_VISUAL_ALIGNED}
    rows = []
    for row in ("audio better", "visual better"):
        part = per_class[per_class["row"] == row]
        if part.empty:
            continue
        test = stats.sign_agreement(part["gap LLM"], part["gap humans"])
        llm_direction = "audio > visual" if (part["gap LLM"] > 0).all() else "mixed" if (part["gap LLM"] > 0).any() else "audio <= visual"
        rows.append({"classes": row, "LLM direction": llm_direction, "n": test["n"], "same direction in humans": test["agree"],
                     "binomial p (one-sided)": test["p_value"], "paper": paper_count(paper_rows[row])})
    both = per_class[per_class["row"].isin(["audio better", "visual better"])]
    if len(both):
        test = stats.sign_agreement(both["gap LLM"], both["gap humans"])
        rows.append({"classes": "both rows", "LLM direction": "", "n": test["n"], "same direction in humans": test["agree"],
                     "binomial p (one-sided)": test["p_value"], "paper": paper_count(*paper_rows.values())})
    counts = pd.DataFrame(rows).set_index("classes")

    hardest = per_class[per_class["row"] == "visual better"]
    shortfall = {"classes": int(len(hardest)), "audio LLM below human ears": int(hardest["audio LLM below human ears"].sum()),
                 "paper": paper_count(PAPER_SHORTFALL)}

    constant = [name for name, col in (("LLM", "gap LLM"), ("human", "gap humans")) if per_class[col].nunique() < 2]
    if len(per_class) < 3 or constant:
        reason = f"only {len(per_class)} classes" if len(per_class) < 3 else f"the {' and '.join(constant)} gaps are constant"
        correlation = {"rho": np.nan, "low": np.nan, "high": np.nan, "p_value": np.nan, "n": int(len(per_class)), "note": f"undefined: {reason}"}
    else:
        correlation = {**stats.rank_correlation_ci(per_class["gap LLM"], per_class["gap humans"], n_boot=n_boot, seed=seed), "note": ""}
    return {"per_class": per_class, "counts": counts, "shortfall": shortfall, "correlation": correlation}


# --------------------------------------------------------------------------------------------
# Figure 1, complete


def figure1_wide(llm_wide: pd.DataFrame, human_wide: pd.DataFrame) -> pd.DataFrame:
    """LLM and human class-wise accuracy side by side (columns audio, visual, audio-visual and the
    human columns), for :func:`xmd_core.plots.figure1`."""
    return llm_wide[list(LLM_COLUMNS)].join(human_wide.drop(columns="n"), how="left")


def figure1_bars(trials: pd.DataFrame) -> dict[str, str]:
    """Column -> legend name for the six bars, the panel labelled by its source."""
    name = who(trials)
    bars = {"audio": "Qwen2-Audio (audio)", "visual": "Qwen2-VL (silent video)", "audio-visual": "Qwen2.5-Omni (sounded video)"}
    bars.update({HUMAN_COLUMNS[c]: f"{name.capitalize()}: {CONDITION_NAMES[c]}" for c in CONDITIONS if c in set(trials["condition"])})
    return bars


def figure1_overall(llm_wide: pd.DataFrame, trials: pd.DataFrame, chosen: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Overall accuracy (%) on the Figure-1 classes for the three LLMs (mean of class-wise
    accuracy; equal clips per class) and the panel per condition (pooled trials, participants
    resampled), ordered as the paper orders them, with the paper's numbers beside."""
    labels = list(chosen["label"])
    paper = paper_numbers("figure1").set_index("row")["value"]
    rows = [{"who": LLM_NAMES[c], "accuracy (%)": round(100 * float(llm_wide.loc[labels, c].mean()), 1), "95% CI": "",
             "paper (%)": paper.get(LLM_NAMES[c], np.nan)} for c in LLM_COLUMNS]
    human = trials[trials["label"].isin(labels)]
    table = stats.accuracy_table(human, by="condition", cluster="participant", n_boot=n_boot, seed=seed).set_index("condition")
    name = who(trials)
    for c in CONDITIONS:
        if c in table.index:
            r = table.loc[c]
            rows.append({"who": f"{name.capitalize()}: {CONDITION_NAMES[c]}", "accuracy (%)": round(100 * r["acc"], 1),
                         "95% CI": f"[{100 * r['low']:.1f}, {100 * r['high']:.1f}]", "paper (%)": paper.get(PAPER_HUMAN_ROWS[c], np.nan)})
    return pd.DataFrame(rows).set_index("who")


# --------------------------------------------------------------------------------------------
# the reading


def reading(accuracy: pd.DataFrame, model: MixedModel, aligned: dict, trials: pd.DataFrame) -> str:
    """A few sentences that read the chapter's numbers (Markdown)."""
    name = who(trials)
    paper = paper_numbers("figure1").set_index("row")["value"]
    acc = accuracy.set_index("input")[[c for c in accuracy.columns if c.startswith("accuracy (%)")][0]]
    parts = [f"{name.capitalize()} answered {len(trials):,} trials ({trials['participant'].nunique()} participants): "
             + ", ".join(f"{CONDITION_NAMES[c]} {acc[c]:.1f}%" for c in CONDITIONS if c in acc.index)
             + " (the paper's people: " + ", ".join(f"{CONDITION_NAMES[c]} {paper[PAPER_HUMAN_ROWS[c]]:.1f}%" for c in CONDITIONS) + ")."]
    effects = [f"{CONDITION_NAMES[c]} vs {CONDITION_NAMES[model.reference]}: {r.log_odds:+.2f} log-odds [{r.low:+.2f}, {r.high:+.2f}]"
               for c in CONDITIONS for term, r in model.fixed.iterrows() if term == f"condition: {c}"]
    parts.append("With participants and clips as random effects, " + "; ".join(effects) + ".")
    counts = aligned["counts"]
    rows = [f"{counts.loc[r, 'same direction in humans']} of {counts.loc[r, 'n']} {r} classes" for r in ("audio better", "visual better") if r in counts.index]
    if rows:
        parts.append("The human gap between ears and eyes points the LLMs' way in " + " and ".join(rows)
                     + f" (the paper: {paper_count(PAPER_AUDIO_ALIGNED)} and {paper_count(PAPER_VISUAL_ALIGNED)}).")
    corr = aligned["correlation"]
    if corr["note"]:
        parts.append(f"The rank correlation of the class-wise gaps is {corr['note']}.")
    else:
        parts.append(f"Across the {corr['n']} Figure-1 classes the audio-minus-visual gaps of LLMs and {name} correlate with "
                     f"Spearman's rho = {corr['rho']:.2f} [{corr['low']:.2f}, {corr['high']:.2f}].")
    return " ".join(parts)
