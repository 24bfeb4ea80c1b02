"""Every notebook of the study runs under papermill in the smoke profile."""

import json

import nbformat
import papermill
import pytest

from xmd_core.config import load_profile
from xmd_core.runner import NOTEBOOKS_DIR, STUDY_NOTEBOOKS, run_notebook


@pytest.fixture(scope="module")
def smoke_profile(tmp_path_factory, smoke_yaml):
    """The smoke profile with its artifacts and results in a temporary folder, every stage of
    `xmd study` run (the notebooks only read results)."""
    from xmd_core.stages import StageClock
    from xmd_core.study_pool import run_study_stages

    root = tmp_path_factory.mktemp("smoke")
    profile = load_profile(smoke_yaml(root, seeded=True))
    run_study_stages(profile, StageClock(profile))
    return profile


def test_a_chapter_whose_results_are_missing_stops_with_the_command_that_writes_them(tmp_path, smoke_yaml):
    profile = load_profile(smoke_yaml(tmp_path, seeded=True))  # the experts, but no switch trained
    with pytest.raises(papermill.PapermillExecutionError, match=r"switch.*metrics\.json.*xmd study --profile"):
        run_notebook("03_switch", profile, out_dir=tmp_path / "executed")
    assert not (profile.results_dir / "switch").exists(), "the chapter trained a switch"


@pytest.mark.slow
def test_study_runs_every_stage_and_stores_their_times(smoke_profile):
    """`xmd study` (before the notebooks below, which then find its results): every stage is
    timed and the table stored with the run records."""
    from xmd_core import runner
    from xmd_core.cli import main
    from xmd_core.stages import read_stages

    main(["study", "--profile", str(smoke_profile.source_file), "--only", "protocol"])
    assert (runner.executed_dir(smoke_profile) / "protocol.ipynb").is_file()  # the profile's own folder, not the book's
    names = [s["stage"] for s in read_stages(smoke_profile)["stages"]]
    side_by_side = ["experts and their evaluations, side by side", "evaluation (letters)", "evaluation (generation)", "switches, side by side",
                    "distillation and ablations, side by side", "switches, distillation, ablations"]  # fmt: skip
    assert names == ["world", *side_by_side, "notebook protocol"]


def _records(profile) -> dict[str, int]:
    """Every stage's record (world, experts, evaluations, switches, adapters) with its mtime."""
    names = ("world.json", "expert.json", "run.json", "metrics.json", "distill.json", "tagger.json")
    return {str(p): p.stat().st_mtime_ns for root in (profile.artifacts_dir, profile.results_dir)
            for name in names for p in root.rglob(name)}


def test_a_second_study_on_finished_folders_does_no_work(smoke_profile):
    """Every stage finds its finished folder through the store and writes nothing (the study
    above ran first)."""
    from xmd_core.cli import main

    before = _records(smoke_profile)
    assert sum(name.endswith("run.json") for name in before) >= 10 and any(n.endswith("expert.json") for n in before)
    main(["study", "--profile", str(smoke_profile.source_file), "--only", "protocol"])
    assert _records(smoke_profile) == before


def test_the_book_gets_the_named_profiles_notebooks_only(tmp_path):
    """A study of another profile (the control world) executes into its own results folder;
    `xmd book --profile P` replaces the book's notebooks by P's, and names the command when one is missing."""
    import dataclasses

    from xmd_core.runner import executed_dir, publish_executed

    profile = dataclasses.replace(load_profile("smoke"), results_dir=tmp_path / "results")
    book = tmp_path / "book_executed"
    book.mkdir()
    (book / "01_analysis.ipynb").write_text("of another profile")
    source = executed_dir(profile)
    source.mkdir(parents=True)
    for name in STUDY_NOTEBOOKS[:-1]:
        (source / f"{name}.ipynb").write_text(name)
    with pytest.raises(FileNotFoundError, match=rf"{STUDY_NOTEBOOKS[-1]}.*xmd study --profile"):
        publish_executed(profile, book)
    (source / f"{STUDY_NOTEBOOKS[-1]}.ipynb").write_text(STUDY_NOTEBOOKS[-1])
    publish_executed(profile, book)
    assert sorted(p.name for p in book.glob("*.ipynb")) == sorted(f"{n}.ipynb" for n in STUDY_NOTEBOOKS)
    assert (book / "01_analysis.ipynb").read_text() == "01_analysis"


def test_sources_are_stripped_and_parameterised():
    for name in STUDY_NOTEBOOKS:
        notebook = nbformat.read(NOTEBOOKS_DIR / f"{name}.ipynb", as_version=4)
        code = [c for c in notebook.cells if c.cell_type == "code"]
        assert "parameters" in code[0].metadata.get("tags", []), name
        assert all(not c.get("outputs") for c in code), f"{name} holds outputs"


@pytest.fixture(scope="module")
def executed_dir(tmp_path_factory):
    """Where the notebooks below are executed: the smoke book is built from them."""
    return tmp_path_factory.mktemp("executed")


@pytest.mark.slow
@pytest.mark.parametrize("name", STUDY_NOTEBOOKS)
def test_notebook_runs_in_smoke_profile(name, smoke_profile, executed_dir):
    executed = run_notebook(name, smoke_profile, out_dir=executed_dir)
    notebook = json.loads(executed.read_text())
    errors = [o for c in notebook["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    # papermill injected the profile, so nothing ran against the default one
    injected = [c for c in notebook["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert str(smoke_profile.source_file) in "".join(injected[0]["source"])
    assert (smoke_profile.results_dir / "questions.parquet").is_file()


@pytest.mark.slow
def test_every_finding_gets_a_verdict_on_the_smoke_study(smoke_profile):
    """After the chapters above (the study's results and 02's simulated panel), every finding is
    judged: none is left "not measurable", and each says why."""
    from xmd_core.findings import NOT_REPRODUCED, REPRODUCED
    from xmd_core.findings_report import findings_table

    table = findings_table(smoke_profile)
    assert set(table["verdict"]) <= {REPRODUCED, NOT_REPRODUCED}, table["reason"].to_dict()
    assert table["reason"].str.len().gt(0).all()


@pytest.mark.slow
def test_the_smoke_book_builds_and_reads_cleanly_in_a_real_browser(smoke_profile, executed_dir, tmp_path):
    """The book of the chapters above, built strict and opened page by page in headless Chromium
    (xmd_core.book_check): no console error, every image, widget and clip loaded."""
    import shutil

    from xmd_core.book_check import browser_available, check_book
    from xmd_core.runner import build_book_at, stage_book, write_stage_table

    why = browser_available() or ("" if shutil.which("npm") else "npm is not on PATH (the widget script is fetched with npm pack)")
    if why:
        print(f"skipped: {why}")
        pytest.skip(why)
    if len(list(executed_dir.glob("*.ipynb"))) < len(STUDY_NOTEBOOKS):
        pytest.skip("the notebooks above did not all run in this session")
    source = stage_book(tmp_path / "book-source", executed_dir)
    write_stage_table(smoke_profile, source / "book" / "executed")
    index = build_book_at(source)
    problems, pages = check_book(index.parent)
    assert pages >= len(STUDY_NOTEBOOKS) + 2, pages
    assert not problems, "\n".join(map(str, problems))
