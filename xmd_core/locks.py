"""One process at a time: an exclusive lock on a file beside what is being built.

The others wait (saying so), then find the work done. The lock is the kernel's (`flock`), so a
killed holder releases it; the lock file itself is never trusted for anything but locking.
"""

from __future__ import annotations

import fcntl
from contextlib import contextmanager
from pathlib import Path

from tqdm.auto import tqdm


@contextmanager
def exclusive(target: Path, what: str, progress: bool = True):
    """Hold `.<target name>.lock` in `target`'s folder for the block; `what` names the work in the
    message printed while another process holds it."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if progress:
                tqdm.write(f"{what}: another process is building it; waiting")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
