"""Every notebook of the study runs under papermill in the smoke profile."""

import json

import nbformat
import pytest

from xmd_core.config import load_profile
from xmd_core.runner import NOTEBOOKS_DIR, STUDY_NOTEBOOKS, run_notebook


@pytest.fixture(scope="module")
def smoke_profile(tmp_path_factory, smoke_yaml):
    """The smoke profile with its artifacts and results in a temporary folder."""
    root = tmp_path_factory.mktemp("smoke")
    path = smoke_yaml(root, seeded=True)
    return load_profile(path)


def test_sources_are_stripped_and_parameterised():
    for name in STUDY_NOTEBOOKS:
        notebook = nbformat.read(NOTEBOOKS_DIR / f"{name}.ipynb", as_version=4)
        code = [c for c in notebook.cells if c.cell_type == "code"]
        assert "parameters" in code[0].metadata.get("tags", []), name
        assert all(not c.get("outputs") for c in code), f"{name} holds outputs"


@pytest.mark.slow
@pytest.mark.parametrize("name", STUDY_NOTEBOOKS)
def test_notebook_runs_in_smoke_profile(name, smoke_profile, tmp_path):
    executed = run_notebook(name, smoke_profile, out_dir=tmp_path)
    notebook = json.loads(executed.read_text())
    errors = [o for c in notebook["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    # papermill injected the profile, so nothing ran against the default one
    injected = [c for c in notebook["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert str(smoke_profile.source_file) in "".join(injected[0]["source"])
    assert (smoke_profile.results_dir / "questions.parquet").is_file()
