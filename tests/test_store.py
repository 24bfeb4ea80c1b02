"""The one way stages keep finished work (xmd_core.store): reuse on the same key, recompute on
another, a missing or unreadable record, and nothing half-written under the final name."""

import json
import os

import pytest

from xmd_core import store

RECORD = "record.json"


def writer(calls, text="result"):
    def write(work):
        calls.append(work)
        (work / "result.txt").write_text(text)
        return {"figure": 1}

    return write


def test_a_finished_step_is_reused_and_its_record_holds_the_key(tmp_path):
    calls = []
    key = {"config": "abc", "sizes": (1, 2)}  # a tuple reads back from JSON as a list: still the same key
    folder = store.compute(tmp_path / "step", RECORD, key, writer(calls), "step")
    assert json.loads((folder / RECORD).read_text()) == {"figure": 1, "key": {"config": "abc", "sizes": [1, 2]}}
    assert store.compute(tmp_path / "step", RECORD, key, writer(calls), "step") == folder
    assert len(calls) == 1 and store.finished(folder, RECORD, key)


@pytest.mark.parametrize("damage", ["other key", "no record", "unreadable record"])
def test_anything_but_a_matching_record_is_computed_again(tmp_path, damage):
    calls = []
    folder = store.compute(tmp_path / "step", RECORD, "k1", writer(calls, "old"), "step")
    (folder / "stale.txt").write_text("left by the older step")
    key = "k2" if damage == "other key" else "k1"
    if damage == "no record":
        (folder / RECORD).unlink()
    elif damage == "unreadable record":
        (folder / RECORD).write_text('{"key": "k1"')  # cut short
    assert not store.finished(folder, RECORD, key)
    store.compute(tmp_path / "step", RECORD, key, writer(calls, "new"), "step")
    assert len(calls) == 2 and (folder / "result.txt").read_text() == "new"
    assert not (folder / "stale.txt").exists(), "the older folder's files were mixed into the new one"


def test_a_failing_step_leaves_the_older_folder_and_no_partial(tmp_path):
    folder = store.compute(tmp_path / "step", RECORD, "k1", writer([], "old"), "step")

    def fails(work):
        (work / "result.txt").write_text("half")
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        store.compute(tmp_path / "step", RECORD, "k2", fails, "step")
    assert (folder / "result.txt").read_text() == "old" and store.finished(folder, RECORD, "k1")
    assert not list(tmp_path.glob(".step.partial-*"))


def test_a_dead_runs_partial_folder_is_removed_and_a_live_ones_kept(tmp_path):
    dead, live = tmp_path / ".step.partial-999999999", tmp_path / f".step.partial-{os.getppid()}"
    dead.mkdir()
    live.mkdir()
    store.publish(tmp_path / "step", RECORD, "k", writer([]))
    assert not dead.exists() and live.is_dir()
    assert not list(tmp_path.glob(f".step.partial-{os.getpid()}"))  # its own was renamed into place


def test_a_part_wise_step_is_finished_only_once_marked_done(tmp_path):
    """Evaluation and the world write their record `running` before their first part: such a
    folder is never taken as finished, and its key says whose parts it holds."""
    key = {"clips": 8, "questions": ["a1", "b2"]}
    assert store.stored_key(tmp_path, "run.json") is None
    store.mark_running(tmp_path, "run.json", key, {"model": "m"})
    assert not store.finished(tmp_path, "run.json", key)
    assert store.stored_key(tmp_path, "run.json") == key
    store.mark_done(tmp_path, "run.json", key, {"model": "m", "accuracy": 0.5})
    assert store.finished(tmp_path, "run.json", key)
    assert not store.finished(tmp_path, "run.json", {**key, "clips": 9})
    record = json.loads((tmp_path / "run.json").read_text())
    assert record == {"model": "m", "accuracy": 0.5, "key": key, "status": "done"}
