"""Files written so that a killed run leaves no half-written file under the final name: each is
written to a temporary name beside its target and renamed into place (`os.replace` is atomic on
one file system)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def save_torch_atomically(obj, target: Path) -> None:
    """`torch.save` of `obj` to `target`, through a temporary file in the same folder."""
    import torch

    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise


def write_text_atomically(text: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, target)
