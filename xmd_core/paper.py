"""The paper's reported numbers, from one data file, for showing beside this run's results.

Source: Jiang, Wu, Choudhari, Mesgarani, "Bridging Ears and Eyes" (the numbers are quoted from
its tables, figures and text; `source` names where)."""

from __future__ import annotations

import pandas as pd

from .config import PACKAGE_DATA

PAPER_CSV = PACKAGE_DATA / "paper_numbers.csv"


def paper_numbers(result: str | None = None) -> pd.DataFrame:
    """Rows `result, row, column, value, source`; only `result`'s rows when given."""
    table = pd.read_csv(PAPER_CSV)
    if result is not None:
        if result not in set(table.result):
            raise KeyError(f"no paper numbers for {result!r}; known: {sorted(set(table.result))}")
        table = table[table.result == result].reset_index(drop=True)
    return table
