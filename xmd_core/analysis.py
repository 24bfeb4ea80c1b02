"""Tables of the analysis chapter, computed from the stored predictions (no model runs here)."""

from __future__ import annotations

import json

import pandas as pd

from . import stats
from .config import Profile
from .evaluate import load_predictions
from .models.registry import REGISTRY
from .paper import paper_numbers
from .vocabulary import run_for

CONDITION_NAMES = {"audio": "audio", "silent_video": "silent video", "sounded_video": "sounded video"}


def finished_runs(profile: Profile) -> pd.DataFrame:
    """Every finished (run, split, condition) under `results/<profile>/predictions/`."""
    rows = []
    for record_path in sorted((profile.results_dir / "predictions").glob("*/*/*/run.json")):
        record = json.loads(record_path.read_text())
        if record.get("status") == "done":
            rows.append({k: record[k] for k in ("run", "model", "split", "condition", "mode", "clips", "errors", "accuracy")} | {
                "wall_s": record["timings"]["wall_s"], "media_wait_s": record["timings"]["media_wait_s"]})
    return pd.DataFrame(rows)


def original_runs(runs: pd.DataFrame, mode: str = "letters") -> pd.DataFrame:
    """The original models' runs of Table 1 (analysis and test splits; no distilled students)."""
    own = runs["run"] == (runs["model"].map(lambda m: run_for(m, mode)))
    return runs[own & (runs["mode"] == mode) & runs["split"].isin(["analysis", "test"])]


def collect(profile: Profile, runs: pd.DataFrame) -> pd.DataFrame:
    """The predictions of the given finished runs, one table, with `model` beside `run`."""
    parts = [load_predictions(profile, r.run, r.split, r.condition).assign(model=r.model) for r in runs.itertuples()]
    return pd.concat(parts, ignore_index=True)


def row_name(model: str, condition: str, note: bool = True) -> str:
    """The Table 1 row of a model under a condition (the paper names Omni's condition); with
    `note`, how the model that runs here differs from the paper's (`ModelSpec.row_note`)."""
    spec = REGISTRY[model]
    name = f"{spec.display} ({CONDITION_NAMES[condition]})" if len(spec.conditions) > 1 else spec.display
    return f"{name} [{spec.row_note}]" if note and spec.row_note else name


#: What a Table 1 cell of this run says when the model did not run.
NOT_RUN = {"remote code": "paper only: needs the model's own remote code", "profile": "not run in this profile"}


def table1(predictions: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Accuracy (%) with 95% bootstrap intervals per model row and split, the paper's beside.

    Error rows count as wrong answers; their number is shown. A row without a run here says why.
    The paper's distilled rows are in the distillation chapter (`transfer.table1_distilled`).
    """
    acc = stats.accuracy_table(predictions, by=["model", "condition", "split"], seed=seed)
    errors = predictions.groupby(["model", "condition", "split"])["error"].apply(lambda e: int((e != "").sum()))
    acc = acc.merge(errors.rename("errors").reset_index(), on=["model", "condition", "split"])
    acc["row"] = [row_name(m, c, note=False) for m, c in zip(acc["model"], acc["condition"])]
    acc["cell"] = [stats.percent_cell(a, lo, hi) for a, lo, hi in zip(acc["acc"], acc["low"], acc["high"])]
    wide = acc.pivot(index="row", columns="split", values="cell")
    wide.columns = [f"{split} (this run)" for split in wide.columns]
    paper = paper_numbers("table1").pivot(index="row", columns="column", values="value")
    paper.columns = [f"{split} (paper)" for split in paper.columns]
    rows = {row_name(m, c, note=False): (m, c) for m in REGISTRY for c in REGISTRY[m].conditions}
    table = wide.join(paper, how="outer")
    table = table.loc[[r for r in rows if r in table.index]]  # the distilled rows: in the distillation chapter
    errors = acc.groupby("row")["errors"].sum()
    table["errors"] = [int(errors[r]) if r in errors.index else "not run" for r in table.index]
    this_run = [c for c in table.columns if c.endswith("(this run)")]
    for row in table.index.difference(errors.index):
        table.loc[row, this_run] = NOT_RUN["remote code" if REGISTRY[rows[row][0]].adapter is None else "profile"]
    for column in paper.columns:  # Omni under one sense alone: the paper reports sounded video only
        table[column] = table[column].astype(object).where(table[column].notna(), "not in the paper")
    return table.rename(index={r: row_name(*rows[r]) for r in table.index if r in rows})


def by_row(predictions: pd.DataFrame, split: str) -> dict[str, pd.DataFrame]:
    """Each Table 1 row's predictions on `split` (model and condition), in the registry's order."""
    rows = {}
    for model in REGISTRY:
        for condition in REGISTRY[model].conditions:
            frame = predictions[(predictions["model"] == model) & (predictions["condition"] == condition) & (predictions["split"] == split)]
            if len(frame):
                rows[row_name(model, condition)] = frame
    return rows


#: Figure 1's bars (the paper's models), by column of the class-wise table.
FIGURE1_COLUMNS = {"audio": ("qwen2-audio", "audio"), "visual": ("qwen2-vl", "silent_video"), "audio-visual": ("qwen2.5-omni", "sounded_video")}


def classwise_columns(predictions: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """Figure 1's columns, then every other model of Table 1 that ran here under its own
    condition (e.g. Qwen2.5-VL, VideoLLaMA3), named by its Table 1 row."""
    ran = set(zip(predictions["model"], predictions["condition"]))
    extra = {row_name(m, c): (m, c) for m in REGISTRY for c in REGISTRY[m].conditions
             if (m, c) in ran and (m, c) not in FIGURE1_COLUMNS.values() and len(REGISTRY[m].conditions) == 1}
    return {**FIGURE1_COLUMNS, **extra}


def figure1_means(wide: pd.DataFrame, labels) -> pd.DataFrame:
    """Mean accuracy (%) of each column over the Figure 1 classes, the paper's beside."""
    paper = paper_numbers("figure1").set_index("row")["value"]
    paper_row = {"audio": "Qwen2-Audio", "visual": "Qwen2-VL", "audio-visual": "Qwen2.5-Omni"}
    means = wide.loc[list(labels)].mean().mul(100).round(1)
    return pd.DataFrame({f"this run ({len(labels)} classes)": means,
                         "paper (30 classes)": [paper[paper_row[c]] if c in paper_row else "not in Figure 1" for c in means.index]})


def classwise(predictions: pd.DataFrame, split: str, columns: dict[str, tuple[str, str]]) -> pd.DataFrame:
    """Class-wise accuracy of chosen (model, condition) pairs on one split.

    `columns` maps a column name to (model, condition), e.g. {"audio": ("qwen2-audio", "audio")}.
    """
    parts = []
    for column, (model, condition) in columns.items():
        rows = predictions[(predictions["split"] == split) & (predictions["model"] == model) & (predictions["condition"] == condition)]
        if rows.empty:
            raise ValueError(f"no predictions of {model} under {condition} on {split}")
        parts.append(rows.assign(column=column))
    return stats.classwise_accuracy(pd.concat(parts), model_col="column")


def audio_vs_visual_count(wide: pd.DataFrame, audio: str = "audio", visual: str = "visual") -> dict[str, int]:
    """In how many classes each model is ahead (the paper: Qwen2-VL better in 226 of 286)."""
    gap = wide[visual] - wide[audio]
    return {"classes": int(len(gap)), "visual better": int((gap > 0).sum()), "audio better": int((gap < 0).sum()), "tied": int((gap == 0).sum())}


def audio_vs_visual_table(wide: pd.DataFrame) -> pd.DataFrame:
    """`audio_vs_visual_count` of this run beside the paper's (Sec. 3.2: Qwen2-VL better in 226
    of 286 classes; the paper gives no ties, so the rest count as audio better)."""
    classes = int(paper_numbers("splits").set_index(["row", "column"])["value"][("all", "classes")])
    visual = int(paper_numbers("figure1").set_index("row")["value"]["Qwen2-VL better"])
    paper = {"classes": classes, "visual better": visual, "audio better": classes - visual, "tied": 0}
    return pd.DataFrame({"this run": audio_vs_visual_count(wide), "paper": paper})


def letter_bias(predictions: pd.DataFrame) -> pd.DataFrame:
    """Accuracy by answer letter for every model row and split (position bias)."""
    parts = []
    for (model, condition, split), rows in predictions.groupby(["model", "condition", "split"]):
        parts.append(stats.accuracy_by_letter(rows).assign(row=row_name(model, condition), split=split))
    return pd.concat(parts, ignore_index=True)


def scoring_agreement(letters: pd.DataFrame, generated: pd.DataFrame) -> pd.DataFrame:
    """Agreement of letter scoring with greedy generation, per model row (same clips)."""
    rows = []
    for (model, condition, split), gen in generated.groupby(["model", "condition", "split"]):
        sel = letters[(letters["model"] == model) & (letters["condition"] == condition) & (letters["split"] == split)]
        both = sel.merge(gen[["clip", "predicted", "correct"]], on="clip", suffixes=("_letters", "_generate"))
        result = stats.agreement_rate(both["predicted_letters"], both["predicted_generate"])
        rows.append({"row": row_name(model, condition), "split": split, "clips": result["n"], "agreement": result["rate"],
                     "unparseable": int(both["predicted_generate"].isna().sum()),
                     "acc letters": both["correct_letters"].mean(), "acc generate": both["correct_generate"].mean()})
    return pd.DataFrame(rows)
