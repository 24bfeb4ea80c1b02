"""Run the study's notebooks with papermill for a profile, then build the Jupyter Book.

Papermill is the only executor: the book renders the executed copies in `book/executed/`
(`execute_notebooks: "off"` in `_config.yml`).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import papermill

from .config import PROFILES_DIR, REPO_ROOT, Profile

NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
EXECUTED_DIR = REPO_ROOT / "book" / "executed"

# In reading order; each later issue adds its chapters here.
STUDY_NOTEBOOKS = ("protocol", "00_world", "01_analysis", "02_human_study")


def profile_parameter(profile: Profile) -> str:
    """The profile's name when it is one of the repository's profiles, else its file's path."""
    if profile.source_file == (PROFILES_DIR / f"{profile.name}.yaml").resolve():
        return profile.name
    return str(profile.source_file)


def run_notebook(name: str, profile: Profile, out_dir: Path = EXECUTED_DIR, **parameters) -> Path:
    """Execute `notebooks/<name>.ipynb` with the profile injected; returns the executed copy."""
    source = NOTEBOOKS_DIR / f"{name}.ipynb"
    if not source.is_file():
        raise FileNotFoundError(f"no notebook {source}")
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / source.name
    papermill.execute_notebook(
        str(source),
        str(target),
        parameters={"profile": profile_parameter(profile), **parameters},
        cwd=str(out_dir),
        kernel_name="python3",
        progress_bar=False,
    )
    return target


def run_study(profile: Profile, names: tuple[str, ...] = STUDY_NOTEBOOKS, out_dir: Path = EXECUTED_DIR) -> dict[str, float]:
    """Run the notebooks in order; returns each one's wall time in seconds."""
    timings = {}
    for name in names:
        start = time.perf_counter()
        print(f"[xmd] running {name} ({profile.name})", flush=True)
        run_notebook(name, profile, out_dir)
        timings[name] = round(time.perf_counter() - start, 1)
        print(f"[xmd] {name}: {timings[name]} s", flush=True)
    return timings


def build_book(strict: bool = True) -> Path:
    """`jupyter-book build` over the repository root; strict turns warnings into errors."""
    command = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(REPO_ROOT)]
    if strict:
        command += ["-W", "-n", "--keep-going"]
    subprocess.run(command, check=True)
    return REPO_ROOT / "_build" / "html" / "index.html"
