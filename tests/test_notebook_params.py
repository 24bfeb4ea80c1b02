"""Notebook parameters are checked in the notebook (xmd_core.notebook_params): a misspelt name or
a value of the wrong type stops the notebook with a message naming it."""

from __future__ import annotations

import papermill
import pytest

from xmd_core.config import REPO_ROOT
from xmd_core.notebook_params import NotebookParameterError, check_parameters

DECLARED = 'profile = "tiny"  # a name or a path\nseed = 0\nscale = 1.5\nquick = False\n'


def _namespace(injected: str) -> dict:
    namespace: dict = {"In": ["", DECLARED, injected, "check_parameters(globals())"]}
    exec(DECLARED + injected, {}, namespace)
    return namespace


def test_declared_parameters_of_the_right_type_pass():
    check_parameters(_namespace('# Parameters\nprofile = "smoke"\nseed = 3\nscale = 2\n'))
    check_parameters({"In": ["", DECLARED], "profile": "tiny"})  # run by hand: nothing injected


@pytest.mark.parametrize(
    ("injected", "message"),
    [
        ('# Parameters\nprofil = "smoke"\n', r"unknown parameter\(s\) profil; this notebook takes: profile, seed, scale, quick"),
        ('# Parameters\nseed = "abc"\n', r"seed = 'abc' \(str\): expected int, like its default 0"),
        ("# Parameters\nseed = True\n", r"seed = True \(bool\)"),
        ("# Parameters\nquick = 1\n", r"quick = 1 \(int\): expected bool"),
        ("# Parameters\nprofile = 3\n", r"profile = 3 \(int\): expected str"),
    ],
)
def test_unknown_or_mistyped_parameters_are_named(injected, message):
    with pytest.raises(NotebookParameterError, match=message):
        check_parameters(_namespace(injected))


def test_a_papermill_typo_stops_the_notebook_before_it_runs(tmp_path):
    with pytest.raises(papermill.PapermillExecutionError, match="unknown parameter.*profil"):
        papermill.execute_notebook(
            str(REPO_ROOT / "notebooks" / "protocol.ipynb"), str(tmp_path / "out.ipynb"),
            parameters={"profil": "smoke"}, progress_bar=False, kernel_name="python3",
        )
