"""What an evaluation run's stored answers depend on, and which of its shards must be answered again.

An evaluation (`evaluate.evaluate`) answers its clips in shards and records its *plan* as the
key of its `run.json` (`evaluate.evaluation_key`): the layout (how many clips, the shard size,
the first clip, the mode), the weights (`model`) and, per shard, a digest of the questions it
answers (`questions`: each clip's label, options and answer letter). On a later run with the same layout:

- other weights: every shard is answered again;
- a shard whose questions changed (a clip relabelled, a question rebuilt): that shard again;
- a shard file that cannot be read (truncated, empty): reported, and that shard again.

Another layout (the split changed: the world or the split settings) makes every stored shard
stale: all are answered again, and shard files past the new layout's last are removed
(:func:`stray_shards`). A run's name is one folder name (:func:`check_run_name`), so that its
folder stays inside the profile's predictions folder.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pandas as pd

#: A run name is one folder name: letters, digits and . _ @ + - , not starting with a dot.
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]*")
#: What a stored answer depends on, per clip, besides the weights and the media.
QUESTION_COLUMNS = ("clip", "label", "options", "answer")
#: Plan entries that may change between runs without making the folder another evaluation's.
ANSWER_KEYS = ("model", "questions")


def check_run_name(name: str) -> str:
    """`name` if it is one safe folder name (no separator, no `..`): a run's folder stays inside
    the profile's predictions folder. Else ValueError."""
    if not isinstance(name, str) or not RUN_NAME.fullmatch(name) or ".." in name:
        raise ValueError(f"run name {name!r} must be one folder name (letters, digits, . _ @ + -, not starting with a dot, no '..')")
    return name


def question_digests(clips: pd.DataFrame, shard_size: int) -> list[str]:
    """One digest per shard of the questions its clips are asked (`clips` in shard order)."""
    missing = [c for c in QUESTION_COLUMNS if c not in clips.columns]
    if missing:
        raise ValueError(f"the clips to evaluate lack column(s) {missing}: join them to their questions first")
    rows = [json.dumps([str(clip), str(label), list(map(str, options)), str(answer)])
            for clip, label, options, answer in zip(*(clips[c] for c in QUESTION_COLUMNS))]
    return [hashlib.sha256("\n".join(rows[i : i + shard_size]).encode()).hexdigest()[:16] for i in range(0, len(rows), shard_size)]


def layout(plan: dict) -> dict:
    return {k: v for k, v in plan.items() if k not in ANSWER_KEYS}


def shards_to_redo(old_plan: dict | None, plan: dict, n_shards: int) -> tuple[list[int], str]:
    """(shards whose stored answers cannot be kept, why) when the folder last ran `old_plan`."""
    if old_plan is None or old_plan == plan:
        return [], ""
    if layout(old_plan) != layout(plan):
        return list(range(n_shards)), f"the stored answers are of another layout ({layout(old_plan)}, now {layout(plan)})"
    if old_plan.get("model") != plan.get("model"):
        return list(range(n_shards)), f"the stored answers are of other weights ({old_plan.get('model')})"
    old = old_plan.get("questions") or []
    changed = [s for s in range(n_shards) if s >= len(old) or old[s] != plan["questions"][s]]
    return changed, f"the questions of {len(changed)} shard(s) changed since they were answered"


def stray_shards(folder: Path, n_shards: int) -> list[Path]:
    """Shard files in `folder` numbered at or past `n_shards`: left by a layout with more shards."""
    shards = (p for p in folder.glob("shard-*.parquet") if p.stem.removeprefix("shard-").isdigit())
    return sorted(p for p in shards if int(p.stem.removeprefix("shard-")) >= n_shards)


def unreadable(path: Path) -> str:
    """'' when `path` is a whole Parquet file, else why it is not."""
    import pyarrow.parquet as pq

    try:
        pq.ParquetFile(path)
    except Exception as exc:  # noqa: BLE001 (Arrow raises several types; the reason is reported)
        return f"{type(exc).__name__}: {exc}"
    return ""
