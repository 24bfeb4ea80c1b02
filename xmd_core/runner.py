"""Run the study's notebooks with papermill for a profile, then build the Jupyter Book.

Papermill is the only executor. `xmd study --profile P` executes the notebooks into
`results/P/executed/` (:func:`executed_dir`), so a study of another profile (the control world)
never touches the book; `xmd book --profile P` copies P's executed notebooks into
`book/executed/` (:func:`publish_executed`), which the book renders (`execute_notebooks: "off"`
in `_config.yml`).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import papermill

from .config import REPO_ROOT, Profile, profile_argument

NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
EXECUTED_DIR = REPO_ROOT / "book" / "executed"

# In running order; each later issue adds its chapters here (the book orders them in _toc.yml).
STUDY_NOTEBOOKS = ("protocol", "00_world", "01_analysis", "02_human_study", "03_switch", "04_distillation", "05_ablations",
                   "07_explore", "06_findings")  # findings last: it reads the other chapters' results (e.g. 02's trials)


def executed_dir(profile: Profile) -> Path:
    """Where `xmd study` executes a profile's notebooks."""
    return profile.results_dir / "executed"


def run_notebook(name: str, profile: Profile, out_dir: Path | None = None, **parameters) -> Path:
    """Execute `notebooks/<name>.ipynb` with the profile injected into `out_dir` (default: the
    profile's :func:`executed_dir`); returns the executed copy."""
    source = NOTEBOOKS_DIR / f"{name}.ipynb"
    if not source.is_file():
        raise FileNotFoundError(f"no notebook {source}")
    out_dir = executed_dir(profile) if out_dir is None else Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / source.name
    papermill.execute_notebook(
        str(source),
        str(target),
        parameters={"profile": profile_argument(profile), **parameters},
        cwd=str(out_dir),
        kernel_name="python3",
        progress_bar=False,
    )
    return target


WIDGETS_DIR = REPO_ROOT / "book" / "_widgets"  # html_extra_path: copied to the site's root
HTML_MANAGER = "@jupyter-widgets/html-manager@1.0.15"


def ensure_widget_js() -> Path:
    """Bundle the widget JavaScript with the book instead of loading it from a CDN.

    Without it, every widget of the built book is blank offline. `npm pack` fetches the
    html-manager package from the npm registry once; its self-contained `embed.js` and fonts
    land in `book/_widgets/_static/widgets/` (git-ignored), which the build copies to the site's
    `_static/widgets/`, where Sphinx looks for the script that `nb_ipywidgets_js` names. (It
    must not sit in the book's own static folder: Jupyter Book would add it to every page.)
    """
    target = WIDGETS_DIR / "_static" / "widgets"
    if (target / "embed.js").is_file():
        return target
    import shutil
    import tarfile
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["npm", "pack", "--silent", HTML_MANAGER], cwd=tmp, check=True, capture_output=True)
        (archive,) = Path(tmp).glob("*.tgz")
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        dist = Path(tmp) / "package" / "dist"
        staging = target.with_name("widgets.partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for item in dist.iterdir():
            script = item.name in ("embed.js", "embed.js.LICENSE.txt")
            if script or item.suffix in (".woff", ".woff2", ".ttf", ".eot", ".svg"):
                shutil.copy2(item, staging / item.name)
        staging.replace(target)
    return target


def write_stage_table(profile: Profile, out_dir: Path = EXECUTED_DIR) -> Path:
    """The last study run's stage times as a MyST table, included by the reproducibility page."""
    from .stages import stages_markdown

    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "study_stages.md"
    target.write_text(stages_markdown(profile))
    return target


def publish_executed(profile: Profile, book_dir: Path = EXECUTED_DIR) -> list[Path]:
    """Replace the book's executed notebooks by the profile's (every study notebook must be
    there: a missing one names the command that executes it)."""
    import shutil

    source = executed_dir(profile)
    missing = [name for name in STUDY_NOTEBOOKS if not (source / f"{name}.ipynb").is_file()]
    if missing:
        raise FileNotFoundError(f"no executed {', '.join(missing)} in {source}: run `xmd study --profile {profile_argument(profile)}` first")
    book_dir.mkdir(parents=True, exist_ok=True)
    for old in book_dir.glob("*.ipynb"):
        old.unlink()
    return [Path(shutil.copy2(source / f"{name}.ipynb", book_dir / f"{name}.ipynb")) for name in STUDY_NOTEBOOKS]


def build_book(profile: Profile, strict: bool = True) -> Path:
    """The profile's executed notebooks into the book, then `jupyter-book build` over the
    repository root; strict turns warnings into errors."""
    ensure_widget_js()
    publish_executed(profile)
    write_stage_table(profile)
    return build_book_at(REPO_ROOT, strict)


def build_book_at(source: Path, strict: bool = True) -> Path:
    """`jupyter-book build` of a book's source folder; returns its `index.html`."""
    command = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(source)]
    if strict:
        command += ["-W", "-n", "--keep-going"]
    subprocess.run(command, check=True)
    return Path(source) / "_build" / "html" / "index.html"


#: What a book's source folder holds besides the executed notebooks (paths from the repository root).
BOOK_SOURCES = ("_config.yml", "_toc.yml", "book/intro.md", "book/reproducibility.md", "book/references.bib", "book/_ext", "book/_widgets")


def stage_book(dest: Path, executed: Path) -> Path:
    """A copy of the book's sources in `dest` with the notebooks executed into `executed` (a
    smoke book in the tests, beside the repository's own build)."""
    import shutil

    ensure_widget_js()
    for name in BOOK_SOURCES:
        source, target = REPO_ROOT / name, Path(dest) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, target)
    shutil.copytree(executed, Path(dest) / "book" / "executed", dirs_exist_ok=True)
    return Path(dest)
