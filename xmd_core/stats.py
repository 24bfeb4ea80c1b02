"""Statistics for the book: bootstrap intervals, paired comparisons, alignment tests.

Pure functions over arrays and DataFrames; no I/O, no plotting. Every accuracy is a fraction in
[0, 1]. Every random procedure takes a `seed` and draws from `np.random.default_rng(seed)`, so
results are reproducible. Intervals are percentile bootstrap intervals at `level` (default 95%).

Binary outcomes make the ordinary bootstraps cheap and exact without materialising resamples:
the number of correct clips in a resample of n clips drawn with replacement is Binomial(n, k/n),
and the four paired outcome cells of a resample are Multinomial(n, observed cell shares). The
cluster bootstrap and the rank-correlation bootstrap resample indices, in memory-bounded chunks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps
from statsmodels.stats.contingency_tables import mcnemar as _sm_mcnemar

LETTERS = "ABCDEFGHIJ"
FIGURE1_ROWS = ("on par", "audio better", "visual better")
_CHUNK_ELEMENTS = 2_000_000  # cap on resample-matrix size held in memory at once
_SORT_DECIMALS = 10  # gaps are rounded to this many decimals before ranking, so float noise never beats the name tie-break


# --------------------------------------------------------------------------------------------
# validation helpers


def _binary(values: Any, name: str) -> np.ndarray:
    """`values` as a 1-D float array of 0/1; ValueError naming `name` otherwise."""
    if isinstance(values, (pd.Series, pd.Index)):
        values = values.to_numpy()
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if arr.dtype == bool:
        return arr.astype(float)
    try:
        out = arr.astype(float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must hold 0/1 (or boolean) values, got non-numeric entries") from None
    if np.isnan(out).any():
        raise ValueError(f"{name} contains missing values; it must hold only 0/1")
    bad = ~np.isin(out, (0.0, 1.0))
    if bad.any():
        raise ValueError(f"{name} must hold only 0/1 values, got e.g. {arr[bad][0]!r}")
    return out


def _check_boot(n_boot: int, level: float) -> None:
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    if not (0.0 < float(level) < 1.0):
        raise ValueError(f"level must lie strictly between 0 and 1, got {level!r}")


def _interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    """Percentile interval of the finite bootstrap `samples`."""
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.quantile(samples, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return float(lo), float(hi)


def _check_columns(df: pd.DataFrame, name: str, columns: Sequence[str]) -> None:
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"{name} must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{name} lacks column(s) {missing}; it has {list(df.columns)}")
    if df.empty:
        raise ValueError(f"{name} is empty")


def _aligned(x: Any, y: Any, names: tuple[str, str]) -> tuple[pd.Series, pd.Series]:
    """Two numeric Series on one index: Series are matched by index (same classes required),
    anything else by position (equal lengths required)."""
    nx, ny = names
    if isinstance(x, pd.Series) and isinstance(y, pd.Series):
        for s, nm in ((x, nx), (y, ny)):
            if s.index.has_duplicates:
                raise ValueError(f"{nm} has duplicated index entries: {list(s.index[s.index.duplicated()][:3])}")
        if set(x.index) != set(y.index):
            only_x = sorted(map(str, set(x.index) - set(y.index)))[:3]
            only_y = sorted(map(str, set(y.index) - set(x.index)))[:3]
            raise ValueError(f"{nx} and {ny} must cover the same classes; only in {nx}: {only_x}, only in {ny}: {only_y}")
        y = y.reindex(x.index)
    else:
        x, y = pd.Series(np.asarray(x)), pd.Series(np.asarray(y))
        if len(x) != len(y):
            raise ValueError(f"{nx} and {ny} differ in length ({len(x)} vs {len(y)})")
    if len(x) == 0:
        raise ValueError(f"{nx} is empty")
    try:
        x, y = x.astype(float), y.astype(float)
    except (TypeError, ValueError):
        raise ValueError(f"{nx} and {ny} must be numeric") from None
    for s, nm in ((x, nx), (y, ny)):
        if s.isna().any():
            raise ValueError(f"{nm} contains missing values")
    return x, y


# --------------------------------------------------------------------------------------------
# accuracy intervals


def percent_cell(acc: float, low: float, high: float) -> str:
    """An accuracy and its interval in percent, as the book's tables show them: "61.5 [58.9, 64.0]"."""
    return f"{100 * acc:.1f} [{100 * low:.1f}, {100 * high:.1f}]"


def accuracy_ci(correct: Any, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> dict[str, float | int]:
    """Accuracy of a 0/1 array with a percentile bootstrap interval over clips.

    Returns dict(acc, low, high, n). Resampling n clips with replacement is drawn exactly as
    Binomial(n, acc) correct clips per replicate (no index matrix needed).
    """
    y = _binary(correct, "correct")
    _check_boot(n_boot, level)
    n, k = y.size, int(y.sum())
    rng = np.random.default_rng(seed)
    boot = rng.binomial(n, k / n, size=n_boot) / n
    low, high = _interval(boot, level)
    return {"acc": k / n, "low": low, "high": high, "n": n}


def _cluster_ratio_boot(num: np.ndarray, den: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap replicates of sum(num)/sum(den) when the G clusters are resampled with replacement."""
    g = num.size
    out = np.empty(n_boot)
    chunk = max(1, _CHUNK_ELEMENTS // g)
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = rng.integers(0, g, size=(stop - start, g))
        out[start:stop] = num[idx].sum(axis=1) / den[idx].sum(axis=1)
    return out


def cluster_accuracy_ci(correct: Any, clusters: Any, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> dict[str, float | int]:
    """Accuracy with a cluster bootstrap interval: whole clusters (e.g. participants) are resampled
    with replacement and the accuracy of each replicate is its pooled correct / pooled trials.

    Returns dict(acc, low, high, n, n_clusters).
    """
    y = _binary(correct, "correct")
    _check_boot(n_boot, level)
    cl = pd.Series(np.asarray(clusters, dtype=object) if not isinstance(clusters, pd.Series) else clusters.to_numpy())
    if cl.ndim != 1 or len(cl) != y.size:
        raise ValueError(f"clusters must be one-dimensional with one entry per outcome ({y.size}), got {len(cl)}")
    if cl.isna().any():
        raise ValueError("clusters contains missing values")
    codes, _ = pd.factorize(cl)
    num = np.bincount(codes, weights=y).astype(float)
    den = np.bincount(codes).astype(float)
    rng = np.random.default_rng(seed)
    low, high = _interval(_cluster_ratio_boot(num, den, n_boot, rng), level)
    return {"acc": float(y.mean()), "low": low, "high": high, "n": int(y.size), "n_clusters": int(num.size)}


def accuracy_table(
    df: pd.DataFrame,
    by: str | Sequence[str],
    correct: str = "correct",
    cluster: str | None = None,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per group of `by` (sorted; the `by` columns may not have missing values) with acc, low,
    high, n. Intervals are the row bootstrap of `accuracy_ci`, or, when `cluster` names a column,
    the cluster bootstrap of `cluster_accuracy_ci` (then an `n_clusters` column is added).
    Every group uses the same `seed`, so a group's interval does not depend on the other groups.
    """
    keys = [by] if isinstance(by, str) else list(by)
    if not keys:
        raise ValueError("by must name at least one column")
    _check_columns(df, "df", keys + [correct] + ([cluster] if cluster is not None else []))
    _check_boot(n_boot, level)
    y = _binary(df[correct], f"df[{correct!r}]")
    for col in keys:
        if df[col].isna().any():
            raise ValueError(f"df[{col!r}] contains missing values; fill them before grouping")
    rows = []
    for key, pos in df.groupby(keys, sort=True, observed=True).indices.items():
        key = key if isinstance(key, tuple) else (key,)
        if cluster is None:
            res = accuracy_ci(y[pos], n_boot=n_boot, level=level, seed=seed)
        else:
            res = cluster_accuracy_ci(y[pos], df[cluster].to_numpy()[pos], n_boot=n_boot, level=level, seed=seed)
        rows.append({**dict(zip(keys, key)), **res})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# paired comparisons


def _paired(correct_a: Any, correct_b: Any) -> tuple[np.ndarray, np.ndarray]:
    a = _binary(correct_a, "correct_a")
    b = _binary(correct_b, "correct_b")
    if a.size != b.size:
        raise ValueError(f"correct_a and correct_b differ in length ({a.size} vs {b.size}); they must be paired on the same clips")
    return a, b


def paired_difference_ci(correct_a: Any, correct_b: Any, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> dict[str, float | int]:
    """acc(b) - acc(a) on the same clips with a paired bootstrap interval (clips resampled once
    for both). Returns dict(diff, low, high, n, acc_a, acc_b).

    A paired resample is drawn exactly as Multinomial(n, shares of the cells a-only-right,
    b-only-right, both-same); its difference is (b-only-right - a-only-right) / n.
    """
    a, b = _paired(correct_a, correct_b)
    _check_boot(n_boot, level)
    n = a.size
    n_a_only = int(((a == 1) & (b == 0)).sum())
    n_b_only = int(((a == 0) & (b == 1)).sum())
    rng = np.random.default_rng(seed)
    cells = rng.multinomial(n, [n_a_only / n, n_b_only / n, (n - n_a_only - n_b_only) / n], size=n_boot)
    boot = (cells[:, 1] - cells[:, 0]) / n
    low, high = _interval(boot, level)
    return {"diff": (n_b_only - n_a_only) / n, "low": low, "high": high, "n": n, "acc_a": float(a.mean()), "acc_b": float(b.mean())}


def mcnemar(correct_a: Any, correct_b: Any) -> dict[str, float | int | bool]:
    """McNemar's test of paired 0/1 outcomes (statsmodels). b = a right & b wrong, c = a wrong &
    b right. Exact two-sided binomial test (statistic = min(b, c)) when b + c < 25, otherwise the
    chi-square statistic with continuity correction. Returns dict(b, c, statistic, p_value, exact).
    """
    a, bb = _paired(correct_a, correct_b)
    n11 = int(((a == 1) & (bb == 1)).sum())
    b = int(((a == 1) & (bb == 0)).sum())
    c = int(((a == 0) & (bb == 1)).sum())
    n00 = int(((a == 0) & (bb == 0)).sum())
    exact = b + c < 25
    res = _sm_mcnemar(np.array([[n11, b], [c, n00]]), exact=exact, correction=True)
    return {"b": b, "c": c, "statistic": float(res.statistic), "p_value": float(min(1.0, res.pvalue)), "exact": bool(exact)}


# --------------------------------------------------------------------------------------------
# class-wise analysis and alignment


def classwise_accuracy(df: pd.DataFrame, model_col: str, label_col: str = "label", correct: str = "correct") -> pd.DataFrame:
    """Wide per-class accuracy: index = class (named `label_col`, sorted), one column per model
    (sorted; NaN where a model has no trials of the class), plus `n` = trials per class of the
    model with the most trials of that class (equal for all models in a complete design).
    """
    _check_columns(df, "df", [model_col, label_col, correct])
    y = pd.Series(_binary(df[correct], f"df[{correct!r}]"), index=df.index)
    for col in (model_col, label_col):
        if df[col].isna().any():
            raise ValueError(f"df[{col!r}] contains missing values")
    if "n" in set(df[model_col]):
        raise ValueError(f"df[{model_col!r}] has a model named 'n', which clashes with the trial-count column")
    grouped = y.groupby([df[label_col], df[model_col]])
    wide = grouped.mean().unstack(model_col).sort_index().sort_index(axis=1)
    wide["n"] = grouped.size().unstack(model_col).max(axis=1).reindex(wide.index).astype(int)
    wide.columns.name = None
    wide.index.name = label_col
    return wide


def sign_agreement(gap_llm: pd.Series, gap_human: pd.Series) -> dict[str, float | int]:
    """Classes where LLM and human per-class gaps (e.g. audio minus visual accuracy) share a sign.

    A zero human gap counts as disagreement (as does any sign mismatch). Series are matched by
    index and must cover the same classes. Returns dict(agree, n, p_value), the p-value from a
    one-sided exact binomial test of agree >= observed under p = 0.5 (scipy.stats.binomtest).
    """
    llm, human = _aligned(gap_llm, gap_human, ("gap_llm", "gap_human"))
    agree = int(((np.sign(llm.to_numpy()) == np.sign(human.to_numpy())) & (human.to_numpy() != 0)).sum())
    n = len(llm)
    p = sps.binomtest(agree, n, 0.5, alternative="greater").pvalue
    return {"agree": agree, "n": n, "p_value": float(p)}


def _rowwise_spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho of each row pair of the 2-D arrays (average ranks for ties); NaN for a row
    where either side is constant."""
    rx = sps.rankdata(x, axis=1)
    ry = sps.rankdata(y, axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    sxy = (rx * ry).sum(axis=1)
    sxx = (rx * rx).sum(axis=1)
    syy = (ry * ry).sum(axis=1)
    denom = np.sqrt(sxx * syy)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(denom > 0, sxy / np.where(denom > 0, denom, 1.0), np.nan)
    return np.clip(rho, -1.0, 1.0)


def rank_correlation_ci(x: pd.Series, y: pd.Series, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> dict[str, float | int]:
    """Spearman's rho of two per-class Series (matched by index) with scipy's two-sided p-value
    and a percentile bootstrap interval over classes (replicates where a side is constant are
    skipped). Returns dict(rho, low, high, p_value, n).
    """
    xs, ys = _aligned(x, y, ("x", "y"))
    _check_boot(n_boot, level)
    n = len(xs)
    if n < 3:
        raise ValueError(f"x and y need at least 3 classes for a rank correlation, got {n}")
    for s, nm in ((xs, "x"), (ys, "y")):
        if s.nunique() < 2:
            raise ValueError(f"{nm} is constant; Spearman's rho is undefined")
    res = sps.spearmanr(xs.to_numpy(), ys.to_numpy())
    xv, yv = xs.to_numpy(), ys.to_numpy()
    rng = np.random.default_rng(seed)
    boot = np.empty(n_boot)
    chunk = max(1, _CHUNK_ELEMENTS // n)
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        boot[start:stop] = _rowwise_spearman(xv[idx], yv[idx])
    low, high = _interval(boot, level)
    return {"rho": float(res.statistic), "low": low, "high": high, "p_value": float(res.pvalue), "n": n}


def select_figure1_classes(classwise: pd.DataFrame, audio_col: str, visual_col: str, n_per_row: int = 10) -> pd.DataFrame:
    """The paper's Figure 1 classes, chosen from LLM accuracies alone.

    gap = audio - visual accuracy. "audio better": the `n_per_row` largest gaps; "visual better":
    the `n_per_row` smallest (most negative) gaps; "on par": the `n_per_row` smallest |gap| among
    the remaining classes, so the rows are disjoint. Ties go to the alphabetically first class
    (gaps are compared after rounding to 10 decimals). Classes come from a `label` column when
    `classwise` has one, else from its index. Returns columns label, row, gap, rows in the order
    on par, audio better, visual better, each sorted by its selection criterion.
    """
    _check_columns(classwise, "classwise", [audio_col, visual_col])
    if isinstance(n_per_row, bool) or not isinstance(n_per_row, (int, np.integer)) or n_per_row < 1:
        raise ValueError(f"n_per_row must be a positive integer, got {n_per_row!r}")
    labels = classwise["label"] if "label" in classwise.columns else pd.Series(classwise.index, index=classwise.index)
    if labels.isna().any() or labels.duplicated().any():
        raise ValueError("classwise must have one row per class (unique, non-missing class names)")
    need = 3 * n_per_row
    if len(classwise) < need:
        raise ValueError(f"classwise has {len(classwise)} classes; selecting {n_per_row} per row needs at least {need}")
    for col in (audio_col, visual_col):
        if classwise[col].isna().any():
            raise ValueError(f"classwise[{col!r}] contains missing values")
    gap = (classwise[audio_col].astype(float) - classwise[visual_col].astype(float)).to_numpy()
    table = pd.DataFrame({"label": labels.astype(str).to_numpy(), "gap": gap})
    table["key"] = table["gap"].round(_SORT_DECIMALS)
    table["abs_key"] = table["key"].abs()

    audio = table.sort_values(["key", "label"], ascending=[False, True]).head(n_per_row)
    rest = table.drop(audio.index)
    visual = rest.sort_values(["key", "label"], ascending=[True, True]).head(n_per_row)
    rest = rest.drop(visual.index)
    par = rest.sort_values(["abs_key", "label"], ascending=[True, True]).head(n_per_row)

    parts = [part.assign(row=name) for name, part in zip(FIGURE1_ROWS, (par, audio, visual))]
    return pd.concat(parts, ignore_index=True)[["label", "row", "gap"]]


# --------------------------------------------------------------------------------------------
# diagnostics


def accuracy_by_letter(df: pd.DataFrame, answer: str = "answer", correct: str = "correct") -> pd.DataFrame:
    """Position-bias diagnostic: accuracy per true answer letter. Returns columns letter, acc, n,
    share (the letter's fraction of trials), one row per letter present, in the order A..J."""
    _check_columns(df, "df", [answer, correct])
    y = pd.Series(_binary(df[correct], f"df[{correct!r}]"), index=df.index)
    letters = df[answer]
    bad = letters[~letters.isin(list(LETTERS))]
    if len(bad):
        raise ValueError(f"df[{answer!r}] must hold letters A..J, got e.g. {bad.iloc[0]!r}")
    g = y.groupby(letters)
    out = pd.DataFrame({"acc": g.mean(), "n": g.size()})
    out = out.reindex([c for c in LETTERS if c in out.index])
    out.index.name = "letter"
    out = out.reset_index()
    out["n"] = out["n"].astype(int)
    out["share"] = out["n"] / out["n"].sum()
    return out


def position_bias_test(df: pd.DataFrame, answer: str = "answer", correct: str = "correct") -> dict[str, float | int]:
    """Chi-square test of independence between the true answer letter and correctness (letters
    present x right/wrong table; scipy.stats.chi2_contingency). Returns dict(statistic, dof,
    p_value, n). A small p-value says accuracy depends on where the answer sits."""
    by = accuracy_by_letter(df, answer=answer, correct=correct)
    right = np.rint(by["acc"] * by["n"]).astype(int).to_numpy()
    table = np.column_stack([right, by["n"].to_numpy() - right])
    keep = table.sum(axis=0) > 0
    if len(by) < 2 or keep.sum() < 2:
        return {"statistic": 0.0, "dof": 0, "p_value": 1.0, "n": int(by["n"].sum())}
    res = sps.chi2_contingency(table[:, keep], correction=False)
    return {"statistic": float(res.statistic), "dof": int(res.dof), "p_value": float(res.pvalue), "n": int(by["n"].sum())}


def agreement_rate(pred_a: Any, pred_b: Any) -> dict[str, float | int]:
    """How often two letter predictions for the same clips match (e.g. letter-logit scoring vs
    free generation). Missing entries (None/NaN: unparseable output) count as disagreement.
    Returns dict(agree, n, rate, unparseable, unparseable_a, unparseable_b), `unparseable` being
    the pairs with at least one missing side."""
    a = np.asarray(pred_a.to_numpy() if isinstance(pred_a, pd.Series) else pred_a, dtype=object)
    b = np.asarray(pred_b.to_numpy() if isinstance(pred_b, pd.Series) else pred_b, dtype=object)
    for arr, nm in ((a, "pred_a"), (b, "pred_b")):
        if arr.ndim != 1:
            raise ValueError(f"{nm} must be one-dimensional, got shape {arr.shape}")
        if arr.size == 0:
            raise ValueError(f"{nm} is empty")
    if a.size != b.size:
        raise ValueError(f"pred_a and pred_b differ in length ({a.size} vs {b.size})")
    miss_a = pd.isna(a)
    miss_b = pd.isna(b)
    missing = miss_a | miss_b
    same = np.asarray(a == b, dtype=bool)
    agree = int((same & ~missing).sum())
    n = int(a.size)
    return {
        "agree": agree,
        "n": n,
        "rate": agree / n,
        "unparseable": int(missing.sum()),
        "unparseable_a": int(miss_a.sum()),
        "unparseable_b": int(miss_b.sum()),
    }
