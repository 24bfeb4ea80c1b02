"""Files written so that a killed run leaves no half-written file under the final name: each is
written to a temporary name beside its target and renamed into place (`os.replace` is atomic on
one file system). A folder is built under `.<name>.partial-<pid>` and renamed the same way;
`remove_dead_partials` clears those a killed process left behind."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def write_atomically(target: Path, write) -> None:
    """Call `write(temporary path)` on a temporary file beside `target`, then rename it into
    place; a failed write leaves `target` as it was and no temporary file."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_torch_atomically(obj, target: Path) -> None:
    """`torch.save` of `obj` to `target`, through a temporary file in the same folder."""
    import torch

    write_atomically(target, lambda tmp: torch.save(obj, tmp))


def write_text_atomically(text: str, target: Path) -> None:
    write_atomically(target, lambda tmp: Path(tmp).write_text(text))


def remove_dead_partials(out: Path) -> list[Path]:
    """Remove the partial folders of `out` whose writing process is gone (a killed run leaves
    `.<name>.partial-<pid>`); a live process's partial folder is kept. Returns those removed."""
    removed = []
    for partial in out.parent.glob(f".{out.name}.partial-*"):
        pid = partial.name.rpartition("-")[2]
        if not (pid.isdigit() and _alive(int(pid))):
            shutil.rmtree(partial, ignore_errors=True)
            removed.append(partial)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True
