"""Checks of a notebook's papermill parameters, in the notebook itself.

papermill injects the parameters it is given as a cell after the one tagged `parameters`
("# Parameters", then `name = value` lines). A misspelt name would then define a variable that
nothing reads, and the notebook would run with its defaults; a value of the wrong type would fail
deep inside a computation. :func:`check_parameters`, called first in the cell after the tagged
one, reads both cells from the kernel's input history and stops with a message naming the
parameter: an unknown name (with the notebook's own list), or a value whose type differs from the
default's (an int where an int is expected, a float where a number, a string where a string).
Run by hand, without papermill, there is nothing injected and nothing to check.
"""

from __future__ import annotations

import ast

INJECTED_HEADER = "# Parameters"


class NotebookParameterError(ValueError):
    """A parameter given to the notebook is unknown or of the wrong type."""


def assignments(source: str) -> dict[str, object]:
    """`name = literal` lines of a cell, as {name: value} (other statements are ignored)."""
    out = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                out[node.targets[0].id] = None  # not a literal: its type is not checked
    return out


def _fits(value: object, default: object) -> bool:
    if default is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


def check_parameters(namespace: dict) -> None:
    """Raise `NotebookParameterError` for an injected parameter that the tagged cell does not
    declare, or whose value does not fit its default's type. `namespace`: the notebook's globals()."""
    history = list(namespace.get("In", []))
    injected_at = [i for i, source in enumerate(history) if source.lstrip().startswith(INJECTED_HEADER)]
    if not injected_at or injected_at[-1] == 0:
        return
    at = injected_at[-1]
    declared, given = assignments(history[at - 1]), assignments(history[at])
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise NotebookParameterError(f"unknown parameter(s) {', '.join(unknown)}; this notebook takes: {', '.join(declared)}")
    for name in given:
        value, default = namespace[name], declared[name]
        if not _fits(value, default):
            raise NotebookParameterError(
                f"parameter {name} = {value!r} ({type(value).__name__}): expected {type(default).__name__}, like its default {default!r}"
            )
