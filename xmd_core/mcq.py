"""The multiple-choice questions shared by every model and every participant (Sec. 3.1).

Ten options; distractors are drawn without replacement with probability proportional to their
class frequency in the dataset; the true label sits at a uniformly random letter. A split's
questions are built once, from a per-clip seed, stored as a table and reused everywhere.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .keys import key_digest

LETTERS = "ABCDEFGHIJ"
PROMPT_HEAD = "Classify the sounding object into one of the categories below:"


def prompt_tail(n_options: int) -> str:
    return f"Respond only with a single letter from A to {LETTERS[n_options - 1]}."


def format_prompt(options: list[str] | tuple[str, ...]) -> str:
    """The paper's shared prompt: the instruction, one `X. name` line per option, the reply rule."""
    lines = [PROMPT_HEAD, *(f"{LETTERS[i]}. {name}" for i, name in enumerate(options)), prompt_tail(len(options))]
    return "\n".join(lines)


@dataclass(frozen=True)
class Question:
    label: str
    options: tuple[str, ...]
    answer: str  # the letter of `label` among `options`

    @property
    def answer_index(self) -> int:
        return LETTERS.index(self.answer)

    @property
    def prompt(self) -> str:
        return format_prompt(self.options)


def build_question(
    label: str, class_counts: Mapping[str, int] | pd.Series, rng: np.random.Generator, n_options: int = 10, exclude: Collection[str] = ()
) -> Question:
    """One question for a clip of class `label`.

    `class_counts` maps every candidate class to its frequency; the label itself is never a
    distractor, nor are the classes of `exclude` (the clip's other labels, with
    `mcq.exclude_present`). Raises ValueError when there are too few other classes.
    """
    if not 2 <= n_options <= len(LETTERS):
        raise ValueError(f"n_options must be between 2 and {len(LETTERS)} (got {n_options})")
    counts = pd.Series(class_counts, dtype=float)
    if label not in counts.index:
        raise ValueError(f"label {label!r} is not among the {len(counts)} classes of the option pool")
    if (counts <= 0).any():
        raise ValueError(f"class counts must be positive: {counts[counts <= 0].index[:3].tolist()}")
    others = counts.drop([label, *(c for c in exclude if c != label and c in counts.index)])
    if len(others) < n_options - 1:
        raise ValueError(f"{n_options} options need {n_options - 1} distractors, only {len(others)} other classes")
    picked = rng.choice(len(others), size=n_options - 1, replace=False, p=(others / others.sum()).to_numpy())
    options = [others.index[i] for i in picked]
    position = int(rng.integers(n_options))
    options.insert(position, label)
    return Question(label=label, options=tuple(options), answer=LETTERS[position])


def clip_seed(seed: int, clip: str) -> list[int]:
    """A per-clip seed that does not depend on which other clips are in the table."""
    digest = hashlib.sha256(clip.encode()).digest()
    return [seed, int.from_bytes(digest[:8], "little")]


def build_questions(
    clips: pd.DataFrame, class_counts: Mapping[str, int] | pd.Series, seed: int, n_options: int = 10,
    present: Mapping[str, Collection[str]] | None = None,
) -> pd.DataFrame:
    """A question per clip: columns clip, label, options (list), answer, answer_index, prompt, seed,
    exclude_present, pool (:func:`pool_digest` of `class_counts`). With `present` (clip -> its
    labels), no distractor is a label of its clip."""
    rows = []
    for clip, label in zip(clips["clip"], clips["label"]):
        exclude = present.get(clip, ()) if present is not None else ()
        q = build_question(label, class_counts, np.random.default_rng(clip_seed(seed, clip)), n_options, exclude)
        rows.append((clip, label, list(q.options), q.answer, q.answer_index, q.prompt))
    table = pd.DataFrame(rows, columns=["clip", "label", "options", "answer", "answer_index", "prompt"])
    return table.assign(seed=seed, exclude_present=present is not None, pool=pool_digest(class_counts))


def pool_digest(class_counts: Mapping[str, int] | pd.Series) -> str:
    """A digest of the option pool (every candidate class and its weight): a stored question
    table drawn from another pool is stale."""
    return key_digest(sorted((str(name), float(weight)) for name, weight in dict(class_counts).items()))


def read_questions(path: str | Path) -> pd.DataFrame:
    """A stored question table, options as lists."""
    stored = pd.read_parquet(path)
    stored["options"] = stored.options.map(list)
    return stored


def load_or_build_questions(
    path: str | Path, clips: pd.DataFrame, class_counts: Mapping[str, int] | pd.Series, seed: int, n_options: int = 10,
    present: Mapping[str, Collection[str]] | None = None,
) -> pd.DataFrame:
    """The stored question table at `path`, built once.

    A stored table is reused only when it covers exactly these clips and labels, with the same
    seed, number of options, distractor rule and option pool (so every model and participant
    gets the same options); otherwise it is rebuilt and rewritten.
    """
    path = Path(path)
    if path.is_file():
        stored = read_questions(path)
        same = len(stored) == len(clips) and (stored["clip"].to_numpy() == clips["clip"].to_numpy()).all()
        same = same and (stored["label"].to_numpy() == clips["label"].to_numpy()).all()
        excluded = stored["exclude_present"].all() if "exclude_present" in stored else False  # older tables: the paper's rule
        same_pool = "pool" in stored and (stored["pool"] == pool_digest(class_counts)).all()  # older tables: rebuilt once
        if same and same_pool and (stored.seed == seed).all() and (stored.options.map(len) == n_options).all() and excluded == (present is not None):
            return stored.assign(exclude_present=excluded)
    table = build_questions(clips, class_counts, seed, n_options, present)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # several processes may store it at once
    table.to_parquet(tmp)
    tmp.replace(path)
    return table


def question_from_row(row: Mapping) -> Question:
    return Question(label=row["label"], options=tuple(row["options"]), answer=row["answer"])


def answer_letter_counts(questions: pd.DataFrame) -> pd.DataFrame:
    """How often each letter is the answer, with a chi-square test of uniformity."""
    from scipy.stats import chisquare

    n_options = int(questions.options.map(len).max())
    counts = questions.answer.value_counts().reindex(list(LETTERS[:n_options]), fill_value=0)
    p_value = chisquare(counts.to_numpy()).pvalue
    return pd.DataFrame({"letter": counts.index, "count": counts.to_numpy(), "share": counts.to_numpy() / counts.sum()}).assign(
        chi2_p_uniform=p_value
    )


def distractor_rates(questions: pd.DataFrame, class_counts: Mapping[str, int] | pd.Series) -> pd.DataFrame:
    """Per class: how often it appears as a distractor, beside its dataset frequency.

    Distractors are drawn proportionally to frequency (without replacement), so the share of
    distractor slots a class takes should rise with its share of the dataset.
    """
    counts = pd.Series(class_counts, dtype=float)
    distractors = [opt for options, label in zip(questions.options, questions.label) for opt in options if opt != label]
    seen = pd.Series(distractors).value_counts().reindex(counts.index, fill_value=0)
    return pd.DataFrame(
        {
            "label": counts.index,
            "frequency_share": (counts / counts.sum()).to_numpy(),
            "distractor_share": (seen / max(len(distractors), 1)).to_numpy(),
        }
    )
