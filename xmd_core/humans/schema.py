"""The trials table of the human study: one row per answered (or skipped) trial.

Every source writes it: the listening/viewing test widget (``source = "human"``) and the
simulated panel of the embedded profile (``source = "simulated"``); the statistics read nothing
else. Columns:

| column | type | meaning |
|---|---|---|
| participant | str | participant id (e.g. ``P001``) |
| trial | int >= 1 | presentation order within the participant |
| clip | str | clip id, as in the question table |
| label | str | the clip's class |
| condition | str | ``audio`` (ears), ``silent_video`` (eyes) or ``sounded_video`` (ears and eyes) |
| options | list of str | the ten options shown, in letter order (the models' options) |
| answer | str | the correct letter |
| response | str or missing | the letter chosen; missing when the trial was skipped |
| correct | bool | response == answer (a skipped trial is wrong) |
| rt_s | float >= 0 | seconds from the trial's display to the response |
| source | str | ``human`` or ``simulated`` |

Parquet keeps the types; CSV stores ``options`` as a JSON list and a skipped response as an
empty field. Readers and writers validate, and an error names the file, the column and the row.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..mcq import LETTERS
from .design import CONDITIONS

TRIAL_COLUMNS = ["participant", "trial", "clip", "label", "condition", "options", "answer", "response", "correct", "rt_s", "source"]
SOURCES = ("human", "simulated")
SUFFIXES = (".parquet", ".csv")


class TrialsError(ValueError):
    """A trials table or file that does not follow the schema."""


def empty_trials() -> pd.DataFrame:
    return validate_trials(pd.DataFrame({c: [] for c in TRIAL_COLUMNS}))


def _where(df: pd.DataFrame, pos: int, where: str) -> str:
    row = df.iloc[pos]
    who = f"participant {row['participant']!r}, trial {row['trial']!r}" if "participant" in df and "trial" in df else ""
    return f"{where}, row {pos + 1}" + (f" ({who})" if who else "")


def _is_missing(value) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return value is pd.NA


def validate_trials(df: pd.DataFrame, where: str = "trials") -> pd.DataFrame:
    """A checked, normalised copy of a trials table (exact columns in schema order, ints, bools,
    lists, None for a skipped response). TrialsError names the column and row of the first fault."""
    df = _schema_columns(df, where)
    _check_names(df, where)
    df["trial"] = _trial_numbers(df, where)
    df["options"] = pd.Series(_option_lists(df, where), dtype=object)
    responses, correct = _responses(df, where)
    df["response"] = pd.Series(responses, dtype=object)
    df["correct"] = np.asarray(correct, dtype=bool)
    df["rt_s"] = _response_times(df, where)
    _check_unique(df, where)
    return df


def _schema_columns(df: pd.DataFrame, where: str) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise TrialsError(f"{where}: expected a DataFrame, got {type(df).__name__}")
    missing = [c for c in TRIAL_COLUMNS if c not in df.columns]
    if missing:
        raise TrialsError(f"{where}: missing column(s) {missing}; the schema is {TRIAL_COLUMNS}")
    extra = [c for c in df.columns if c not in TRIAL_COLUMNS]
    if extra:
        raise TrialsError(f"{where}: unknown column(s) {extra}; the schema is {TRIAL_COLUMNS}")
    return df[TRIAL_COLUMNS].reset_index(drop=True).copy()


def _check_names(df: pd.DataFrame, where: str) -> None:
    """The text columns, the condition and the source."""
    for col in ("participant", "clip", "label"):
        for pos, value in enumerate(df[col]):
            if not isinstance(value, str) or not value:
                raise TrialsError(f"{_where(df, pos, where)}: column {col!r} must be a non-empty string (got {value!r})")
    for pos, value in enumerate(df["condition"]):
        if value not in CONDITIONS:
            raise TrialsError(f"{_where(df, pos, where)}: column 'condition' must be one of {', '.join(CONDITIONS)} (got {value!r})")
    for pos, value in enumerate(df["source"]):
        if value not in SOURCES:
            raise TrialsError(f"{_where(df, pos, where)}: column 'source' must be 'human' or 'simulated' (got {value!r})")


def _trial_numbers(df: pd.DataFrame, where: str) -> np.ndarray:
    trial = []
    for pos, value in enumerate(df["trial"]):
        ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool) or (isinstance(value, float) and value.is_integer())
        if not ok or int(value) < 1:
            raise TrialsError(f"{_where(df, pos, where)}: column 'trial' must be an integer >= 1 (got {value!r})")
        trial.append(int(value))
    return np.asarray(trial, dtype=np.int64)


def _option_lists(df: pd.DataFrame, where: str) -> list[list[str]]:
    options = []
    for pos, value in enumerate(df["options"]):
        if isinstance(value, np.ndarray):
            value = value.tolist()
        if not isinstance(value, (list, tuple)) or not 2 <= len(value) <= len(LETTERS) or not all(isinstance(v, str) and v for v in value):
            raise TrialsError(f"{_where(df, pos, where)}: column 'options' must be a list of 2-10 class names (got {value!r})")
        if df["label"].iloc[pos] not in value:
            raise TrialsError(f"{_where(df, pos, where)}: column 'options' does not hold the label {df['label'].iloc[pos]!r}")
        options.append(list(value))
    return options


def _responses(df: pd.DataFrame, where: str) -> tuple[list[str | None], list[bool]]:
    """Each row's answer, response (None: skipped) and correct flag, checked against each other."""
    responses, correct = [], []
    for pos in range(len(df)):
        n_options = len(df["options"].iloc[pos])
        answer = df["answer"].iloc[pos]
        if not isinstance(answer, str) or answer not in LETTERS[:n_options]:
            raise TrialsError(f"{_where(df, pos, where)}: column 'answer' must be a letter A-{LETTERS[n_options - 1]} (got {answer!r})")
        if df["options"].iloc[pos][LETTERS.index(answer)] != df["label"].iloc[pos]:
            raise TrialsError(f"{_where(df, pos, where)}: column 'answer' ({answer}) does not point at the label {df['label'].iloc[pos]!r} among the options")
        response = df["response"].iloc[pos]
        if _is_missing(response) or response == "":
            response = None
        elif not isinstance(response, str) or response not in LETTERS[:n_options]:
            raise TrialsError(f"{_where(df, pos, where)}: column 'response' must be a letter A-{LETTERS[n_options - 1]} or empty for a skipped trial (got {response!r})")
        flag = df["correct"].iloc[pos]
        if isinstance(flag, str) and flag in ("True", "False"):
            flag = flag == "True"
        if not isinstance(flag, (bool, np.bool_)):
            raise TrialsError(f"{_where(df, pos, where)}: column 'correct' must be True or False (got {flag!r})")
        if bool(flag) != (response == answer):
            raise TrialsError(f"{_where(df, pos, where)}: column 'correct' is {bool(flag)} but the response is {response!r} and the answer {answer!r}")
        responses.append(response)
        correct.append(bool(flag))
    return responses, correct


def _response_times(df: pd.DataFrame, where: str) -> np.ndarray:
    rts = []
    for pos, value in enumerate(df["rt_s"]):
        ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
        if not ok or not math.isfinite(float(value)) or float(value) < 0:
            raise TrialsError(f"{_where(df, pos, where)}: column 'rt_s' must be a finite number of seconds >= 0 (got {value!r})")
        rts.append(float(value))
    return np.asarray(rts, dtype=np.float64)


def _check_unique(df: pd.DataFrame, where: str) -> None:
    """One row per participant and trial number, and per participant and clip."""
    dup = df[df.duplicated(["participant", "trial"], keep=False)]
    if len(dup):
        raise TrialsError(f"{where}: participant {dup['participant'].iloc[0]!r} has trial {dup['trial'].iloc[0]} more than once (rows {', '.join(str(i + 1) for i in dup.index[:2])})")
    met = df[df.duplicated(["participant", "clip"], keep=False)]
    if len(met):
        raise TrialsError(f"{where}: participant {met['participant'].iloc[0]!r} meets clip {met['clip'].iloc[0]!r} twice (rows {', '.join(str(i + 1) for i in met.index[:2])})")


def write_trials(df: pd.DataFrame, path: str | Path) -> Path:
    """Validate and write a trials table (`.parquet` or `.csv`) atomically: a reader, or a crash
    mid-write, never sees half a file."""
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise TrialsError(f"{path}: a trials file must end in .parquet or .csv")
    df = validate_trials(df, where=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if path.suffix == ".parquet":
        df.to_parquet(tmp, index=False)
    else:
        out = df.assign(options=df["options"].map(json.dumps), response=df["response"].map(lambda r: "" if r is None else r))
        out.to_csv(tmp, index=False)
    os.replace(tmp, path)
    return path


def _read_one(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        df = pd.read_parquet(path)
    elif path.suffix == ".csv":
        df = pd.read_csv(path, dtype={"participant": str, "clip": str, "label": str, "condition": str, "answer": str,
                                      "response": str, "source": str, "options": str}, keep_default_na=False)
        if "options" in df.columns:
            parsed = []
            for pos, text in enumerate(df["options"]):
                try:
                    parsed.append(json.loads(text))
                except json.JSONDecodeError as exc:
                    raise TrialsError(f"{path}, row {pos + 1}: column 'options' is not a JSON list ({exc})") from exc
            df["options"] = pd.Series(parsed, dtype=object)
    else:
        raise TrialsError(f"{path}: a trials file must end in .parquet or .csv")
    return validate_trials(df, where=str(path))


def read_trials(path: str | Path) -> pd.DataFrame:
    """A trials file, or every trials file (`*.parquet`, `*.csv`) of a folder, as one validated
    table sorted by participant and trial."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in SUFFIXES and not p.name.startswith("."))
        if not files:
            raise FileNotFoundError(f"no trials files (*.parquet, *.csv) in {path}")
        parts = [_read_one(p) for p in files]
        table = validate_trials(pd.concat(parts, ignore_index=True), where=str(path))
    elif path.is_file():
        table = _read_one(path)
    else:
        raise FileNotFoundError(f"no trials file or folder at {path}")
    return table.sort_values(["participant", "trial"], kind="stable").reset_index(drop=True)
