"""One way for a stage to keep its finished work and never trust a partial one.

A step's result is a folder with a record (a JSON file named by the stage) that holds the
step's `key`: everything that determines the result. The folder is computed into a partial
sibling `.<name>.partial-<pid>`, the record written last, then renamed into place over any
older folder. So:

- a folder whose record holds the same key is finished and reused (`finished`);
- a folder without a record, with another key, or with an unreadable record is recomputed;
- a killed run leaves only its partial folder, which the next run removes
  (`atomic.remove_dead_partials`), never a folder that looks finished.

`compute` is the whole cycle under the folder's lock (experts, the switch's tagger); `publish` is
its last half, for a stage that computes before it knows it will save (distillation: several
processes train, one saves; the switch: its checkpoint is saved beside, in the artifacts).

A *part-wise* step (evaluation: a shard of answers at a time; the world: a clip at a time) keeps
its finished parts across a kill, which a whole-folder rename would throw away. It writes its
record first with `status: running` (`mark_running`), so that every part in the folder is known
to come from that key; then each part atomically; then the record again without `running`
(`mark_done`). `finished` is the same test for both kinds: a record with the key and not running.
A part-wise stage keeps the parts of a running record of its key and recomputes the rest; parts
under another key, or under no readable record, are never trusted.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from .atomic import remove_dead_partials, write_text_atomically
from .locks import exclusive

#: The status of a part-wise step's record while parts are still missing, and once they are in.
RUNNING = "running"
DONE = "done"


def _as_stored(key):
    """The key as it reads back from JSON (tuples become lists), so that equal keys compare equal."""
    return json.loads(json.dumps(key))


def read_record(folder: Path, record: str) -> dict | None:
    """The folder's record, or None when it is missing or unreadable (then it is recomputed)."""
    path = Path(folder) / record
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def finished(folder: Path, record: str, key) -> bool:
    """Whether `folder` holds a finished step of `key` (for a part-wise step: every part is in)."""
    stored = read_record(folder, record)
    return stored is not None and stored.get("key") == _as_stored(key) and stored.get("status") != RUNNING


def stored_key(folder: Path, record: str):
    """The key of the step stored in `folder`, finished or running; None without a readable record."""
    return (read_record(folder, record) or {}).get("key")


def _write_record(folder: Path, record: str, key, fields: dict | None, status: str) -> None:
    write_text_atomically(json.dumps({**(fields or {}), "key": key, "status": status}, indent=1), Path(folder) / record)


def mark_running(folder: Path, record: str, key, fields: dict | None = None) -> None:
    """A part-wise step starts (or resumes) in `folder`: its parts from now on are `key`'s."""
    _write_record(folder, record, key, fields, RUNNING)


def mark_done(folder: Path, record: str, key, fields: dict | None = None) -> None:
    """A part-wise step's parts are all in: its record, without `running`, is written last."""
    _write_record(folder, record, key, fields, DONE)


def replace_folder(work: Path, target: Path) -> None:
    """Move the finished `work` folder to `target`, replacing an older one."""
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.old-{os.getpid()}"
        target.rename(old)
    work.rename(target)
    if old is not None:
        shutil.rmtree(old)


def publish(folder: Path, record: str, key, write: Callable[[Path], dict]) -> Path:
    """Build `folder` anew: `write(work)` fills a fresh partial folder and returns the record's
    fields; the record (with `key`) is written last, then the folder is renamed into place."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_partials(folder)
    work = folder.with_name(f".{folder.name}.partial-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        fields = write(work)
        write_text_atomically(json.dumps({**fields, "key": key}, indent=1), work / record)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)  # a failed step leaves the older folder as it was
        raise
    replace_folder(work, folder)
    return folder


def compute(folder: Path, record: str, key, write: Callable[[Path], dict], what: str, progress: bool = True) -> Path:
    """The folder of a finished step of `key`: reused when there is one, else computed by
    `write` (see `publish`) under the folder's lock, so two processes never compute it twice."""
    folder = Path(folder)
    if finished(folder, record, key):
        return folder
    with exclusive(folder, what, progress):
        if finished(folder, record, key):  # another process computed it while this one waited
            return folder
        return publish(folder, record, key, write)
