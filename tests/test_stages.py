"""The stage table of `xmd study` (xmd_core.stages) and its page in the book."""

from __future__ import annotations

import json

import pytest

from xmd_core import stages
from xmd_core.runner import write_stage_table


def test_stages_are_timed_stored_and_tabled(smoke_in, tmp_path):
    profile = smoke_in(tmp_path)
    assert stages.read_stages(profile) is None
    assert "No complete `xmd study --profile smoke` run" in stages.stages_markdown(profile)
    clock = stages.StageClock(profile)
    with clock.stage("world"):
        pass
    with clock.stage("experts"):
        pass
    path = clock.write()
    record = json.loads(path.read_text())
    assert [s["stage"] for s in record["stages"]] == ["world", "experts"]
    assert record["total_s"] >= sum(s["seconds"] for s in record["stages"])
    assert stages.read_stages(profile) == record
    table = stages.stages_markdown(profile)
    assert "| world |" in table and "| experts |" in table and "**total**" in table
    assert "total" in stages.format_table(record)
    page = write_stage_table(profile, out_dir=tmp_path / "executed")
    assert page.read_text() == table


def test_a_stage_that_fails_is_not_recorded(smoke_in, tmp_path):
    clock = stages.StageClock(smoke_in(tmp_path))
    with pytest.raises(RuntimeError):
        with clock.stage("experts"):
            raise RuntimeError("boom")
    assert clock.stages == []


def test_a_corrupt_stage_file_is_named(smoke_in, tmp_path):
    profile = smoke_in(tmp_path)
    profile.results_dir.mkdir(parents=True)
    (profile.results_dir / stages.STAGES_FILE).write_text("{not json")
    with pytest.raises(ValueError, match="study_stages.json: not valid JSON"):
        stages.read_stages(profile)
    (profile.results_dir / stages.STAGES_FILE).write_text("[]")
    with pytest.raises(ValueError, match="no 'stages' list"):
        stages.read_stages(profile)
