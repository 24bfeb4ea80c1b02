"""Wall time of each stage of `xmd study`, stored with the run records and shown in the book.

`xmd study` times every stage (world, experts, evaluations, distillation, each notebook) and
writes `results/<profile>/study_stages.json` when it ends. A stage that found its results
stored takes seconds, so the table says what this run did, not what a fresh machine pays.
`xmd book` turns the file into the table of the reproducibility appendix (:func:`stages_markdown`).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from .config import Profile

STAGES_FILE = "study_stages.json"


class StageClock:
    """Times named stages in order; :meth:`write` stores them."""

    def __init__(self, profile: Profile):
        self.profile = profile
        self.stages: list[dict] = []
        self.started = time.perf_counter()
        self.started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")

    @contextmanager
    def stage(self, name: str):
        start = time.perf_counter()
        print(f"[xmd] stage {name} ({self.profile.name})", flush=True)
        yield
        seconds = round(time.perf_counter() - start, 1)
        self.stages.append({"stage": name, "seconds": seconds})
        print(f"[xmd] stage {name}: {seconds} s", flush=True)

    def record(self) -> dict:
        return {
            "profile": self.profile.name,
            "config": self.profile.config_hash(),  # which configuration the results are of
            "started": self.started_at,
            "total_s": round(time.perf_counter() - self.started, 1),
            "cpus": os.cpu_count(),
            "stages": self.stages,
        }

    def write(self) -> Path:
        """Store the record atomically in the profile's results folder; returns the file."""
        target = self.profile.results_dir / STAGES_FILE
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(json.dumps(self.record(), indent=1))
        tmp.replace(target)
        return target


def read_stages(profile: Profile) -> dict | None:
    """The last complete `xmd study` run's record, or None when none finished."""
    path = profile.results_dir / STAGES_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc}); delete it and run `xmd study` again") from exc
    if not isinstance(record, dict) or not isinstance(record.get("stages"), list):
        raise ValueError(f"{path}: no 'stages' list; delete it and run `xmd study` again")
    return record


def format_table(record: dict) -> str:
    """The stages as a plain-text table (printed at the end of `xmd study`)."""
    width = max(len(s["stage"]) for s in record["stages"]) if record["stages"] else 5
    lines = [f"{'stage':<{width}}  seconds"]
    lines += [f"{s['stage']:<{width}}  {s['seconds']:>7.1f}" for s in record["stages"]]
    lines.append(f"{'total':<{width}}  {record['total_s']:>7.1f}")
    return "\n".join(lines)


def stages_markdown(profile: Profile) -> str:
    """A MyST table of the last study run's stage times, or a line that says why there is none."""
    record = read_stages(profile)
    if record is None:
        return f"No complete `xmd study --profile {profile.name}` run is recorded yet ({profile.results_dir / STAGES_FILE} is missing).\n"
    rows = "\n".join(f"| {s['stage']} | {s['seconds']:,.1f} |" for s in record["stages"])
    return (
        f"Stage times of the last `xmd study --profile {record['profile']}` (started {record['started']}, "
        f"{record['cpus']} CPUs; a stage that found its results stored takes seconds):\n\n"
        f"| stage | seconds |\n|---|---:|\n{rows}\n| **total** | **{record['total_s']:,.1f}** |\n"
    )
