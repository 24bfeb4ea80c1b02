"""Checks of a clip index as a whole, before anything is built from it.

Each index CSV is read row by row (`data.read_index_csv`), and every row keeps where it came
from (`where`: "file:line"). Then, across all the CSVs of a profile, :func:`check_index`
refuses what would corrupt the splits silently:

- a clip listed twice (even with the same label and split: it would enter its split twice; with
  another label or split it would land in two splits, and one of its questions would carry the
  other's answer);
- a split other than train, test, pretrain or unseen;
- a label that the class table (`stat.csv`) does not know (:func:`check_labels`).

Every error names the file, the line and the value. Clips that are missing on disk or cannot
be decoded are not errors: they are dropped and reported (`data.probe_clips`).
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

#: The splits an index row may have.
KNOWN_SPLITS = ("train", "test", "pretrain", "unseen")
#: Field names that make a first line a header row (skipped) rather than a clip.
HEADER_FIELDS = frozenset({"ytid", "youtube_id", "video_id", "clip", "file", "start", "start_seconds", "label", "class", "split"})
#: How many offending rows an error lists.
SHOWN = 3


class IndexError_(ValueError):
    """A CSV of the index is malformed; the message names the file and the line."""


def is_header(row: list[str]) -> bool:
    """Whether a first line is a header (every field a known column name), not a clip."""
    return bool(row) and all(field.strip().lower() in HEADER_FIELDS for field in row)


def _listed(rows: pd.DataFrame, column: str) -> str:
    """'file:line ('value')' for the first few rows, and how many more."""
    shown = [f"{where} ({value!r})" for where, value in zip(rows["where"].head(SHOWN), rows[column].head(SHOWN))]
    return ", ".join(shown) + (f" and {len(rows) - SHOWN} more" if len(rows) > SHOWN else "")


def check_index(index: pd.DataFrame) -> None:
    """Raise `IndexError_` for a clip listed more than once or an unknown split.

    `index`: the rows of every index CSV, with columns clip, label, split and where."""
    unknown = index[~index["split"].isin(KNOWN_SPLITS)]
    if not unknown.empty:
        raise IndexError_(f"unknown split at {_listed(unknown, 'split')}: a split is one of {', '.join(KNOWN_SPLITS)}")
    repeated = index[index["clip"].duplicated(keep=False)]
    if repeated.empty:
        return
    clip, rows = next(iter(repeated.groupby("clip", sort=False)))
    differs = [c for c in ("label", "split") if rows[c].nunique() > 1]
    what = f"with different {' and '.join(differs)} " if differs else ""
    listed = ", ".join(f"{w} ({label!r}, {split})" for w, label, split in zip(rows["where"], rows["label"], rows["split"]))
    others = repeated["clip"].nunique() - 1
    raise IndexError_(
        f"clip {clip!r} is listed {len(rows)} times {what}at {listed}"
        + (f"; {others} more clip(s) are listed more than once" if others else "")
        + ": each clip must appear once in a profile's index files"
    )


def check_labels(index: pd.DataFrame, known: Iterable[str], stat_csv) -> None:
    """Raise `IndexError_` for rows whose label is not among `known` (the class table's)."""
    unknown = index[~index["label"].isin(set(known))]
    if not unknown.empty:
        raise IndexError_(f"label not in {stat_csv} at {_listed(unknown, 'label')}")
