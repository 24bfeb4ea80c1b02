"""Resumable evaluation: shards, a killed run that resumes, error rows for corrupt clips."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import psutil
import pandas as pd

import pytest

from xmd_core import data, mcq
from xmd_core.config import load_profile
from xmd_core.evaluate import evaluate, load_predictions, load_record, run_dir
from xmd_core.mcq import LETTERS
from xmd_core.models import load_model
from xmd_core.models.tiny import build_tiny_checkpoint

CLASSES = data.read_stat().label.tolist()[:40]


@pytest.fixture(scope="module")
def setup(tmp_path_factory, real_clip):
    root = tmp_path_factory.mktemp("evaluate")
    profile = dataclasses.replace(load_profile("smoke"), artifacts_dir=root / "artifacts", results_dir=root / "results")
    build_tiny_checkpoint("qwen2_audio", profile.artifacts_dir / "checkpoints" / "qwen2-audio", CLASSES)
    clips_dir = root / "clips"
    clips_dir.mkdir()
    names = [f"clip{i:02d}_000001" for i in range(7)]
    for name in names:
        os.link(real_clip, clips_dir / f"{name}.mp4")
    (clips_dir / "broken_000001.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
    table = pd.DataFrame({"clip": names + ["broken_000001"], "label": [CLASSES[i % 5] for i in range(len(names) + 1)]})
    table["path"] = [str(clips_dir / f"{c}.mp4") for c in table["clip"]]
    questions = mcq.build_questions(table, {c: 100 + i for i, c in enumerate(CLASSES)}, seed=0)
    return profile, table.merge(questions.drop(columns=["label"]), on="clip")


def test_predictions_and_error_rows(setup):
    profile, clips = setup
    adapter = load_model("qwen2-audio", profile)
    out = evaluate(adapter, profile, clips, "audio", "test", run="plain", shard_size=3, progress=False)
    assert len(out) == len(clips) and sorted(out["clip"]) == sorted(clips["clip"])
    broken = out.set_index("clip").loc["broken_000001"]
    assert "broken_000001" in broken["error"] and pd.isna(broken["predicted"]) and not broken["correct"]
    good = out[out["error"] == ""]
    assert good["predicted"].isin(list("ABCDEFGHIJ")).all()
    assert all(np.isfinite(v).all() and len(v) == 10 for v in good["letter_logits"])
    assert (good["correct"] == (good["predicted"] == good["answer"])).all()
    record = load_record(profile, "plain", "test", "audio")
    assert record["status"] == "done" and record["errors"] == 1 and record["clips"] == len(clips)
    assert {"torch", "transformers"} <= set(record["versions"]) and record["git_commit"]
    assert len(list(run_dir(profile, "plain", "test", "audio").glob("shard-*.parquet"))) == 3
    # a finished run is not redone, and its record (with its timings) is kept
    again = evaluate(adapter, profile, clips, "audio", "test", run="plain", shard_size=3, progress=False)
    assert load_record(profile, "plain", "test", "audio") == record
    assert again["predicted"].tolist() == out["predicted"].tolist()


def test_a_killed_run_resumes_to_the_same_predictions(setup, tmp_path):
    profile, clips = setup
    clips.to_pickle(tmp_path / "clips.pkl")
    script = textwrap.dedent(f"""
        import dataclasses, pickle, time
        from pathlib import Path
        import pandas as pd
        from xmd_core.config import load_profile
        from xmd_core.evaluate import evaluate
        from xmd_core.models import load_model
        profile = dataclasses.replace(load_profile("smoke"), artifacts_dir=Path({str(profile.artifacts_dir)!r}), results_dir=Path({str(profile.results_dir)!r}))
        adapter = load_model("qwen2-audio", profile)
        slow_inputs = adapter.inputs
        def inputs(samples, condition):
            time.sleep(1.0)  # slow enough to be killed between shards
            return slow_inputs(samples, condition)
        adapter.inputs = inputs
        evaluate(adapter, profile, pd.read_pickle({str(tmp_path / "clips.pkl")!r}), "audio", "test", run="killed", shard_size=2, progress=False)
    """)
    child = subprocess.Popen([sys.executable, "-c", script])
    first = run_dir(profile, "killed", "test", "audio") / "shard-00000.parquet"
    deadline = time.time() + 120
    while not first.exists() and time.time() < deadline and child.poll() is None:
        time.sleep(0.1)
    assert first.exists(), "the child wrote no shard"
    workers = psutil.Process(child.pid).children(recursive=True)
    assert workers, "the evaluation runs no decoding worker to check"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, f"decoding workers outlived the killed run: {[w.pid for w in alive]}"
    done_before = sorted(p.name for p in first.parent.glob("shard-*.parquet"))
    assert len(done_before) < 4, "killed too late to test resuming"
    stamp = first.stat().st_mtime_ns
    assert load_record(profile, "killed", "test", "audio")["status"] == "running"

    adapter = load_model("qwen2-audio", profile)
    resumed = evaluate(adapter, profile, clips, "audio", "test", run="killed", shard_size=2, progress=False)
    assert first.stat().st_mtime_ns == stamp, "a finished shard was redone"
    whole = evaluate(adapter, profile, clips, "audio", "test", run="whole", shard_size=2, progress=False)
    columns = ["clip", "predicted", "correct", "error"]
    pd.testing.assert_frame_equal(resumed[columns], whole[columns])
    np.testing.assert_allclose(np.stack(resumed["letter_logits"]), np.stack(whole["letter_logits"]), atol=1e-6, equal_nan=True)


def test_another_layout_is_answered_again_without_stray_shards(setup, capsys):
    """A changed split (here: fewer clips) makes the stored answers stale: all are answered
    again, and the old layout's extra shard files go, so no stale answer is read back."""
    profile, clips = setup
    adapter = load_model("qwen2-audio", profile)
    evaluate(adapter, profile, clips, "audio", "test", run="plan", shard_size=2, progress=False)
    folder = run_dir(profile, "plan", "test", "audio")
    assert len(list(folder.glob("shard-*.parquet"))) == (len(clips) + 1) // 2 > 2
    fewer = clips.sort_values("clip").head(3)
    again = evaluate(adapter, profile, fewer, "audio", "test", run="plan", shard_size=2, progress=False)
    assert "another layout" in "".join(capsys.readouterr())
    assert sorted(p.name for p in folder.glob("shard-*.parquet")) == ["shard-00000.parquet", "shard-00001.parquet"]
    assert list(load_predictions(profile, "plan", "test", "audio")["clip"]) == list(fewer["clip"]) == list(again["clip"])


def test_other_weights_answer_again(setup):
    profile, clips = setup
    adapter = load_model("qwen2-audio", profile)
    assert str(profile.artifacts_dir / "checkpoints" / "qwen2-audio") in adapter.identity
    evaluate(adapter, profile, clips.head(3), "audio", "test", run="identity", progress=False)
    shard = run_dir(profile, "identity", "test", "audio") / "shard-00000.parquet"
    shard.write_bytes(b"stale")  # were it read back, loading would fail
    adapter.identity += "; retrained"  # as a retrained expert or another adapter would be
    evaluate(adapter, profile, clips.head(3), "audio", "test", run="identity", progress=False)
    again = load_record(profile, "identity", "test", "audio")
    assert again["key"]["model"].endswith("; retrained") and again["status"] == "done"
    assert len(load_predictions(profile, "identity", "test", "audio")) == 3


def test_batches_never_cross_a_shard():
    from xmd_core.evaluate import shard_batches

    batches = shard_batches([0, 2], n_clips=23, shard_size=10, batch_size=4)
    assert batches == [(0, [0, 1, 2, 3]), (0, [4, 5, 6, 7]), (0, [8, 9]), (2, [20, 21, 22])]
    assert shard_batches([], 23, 10, 4) == []


def _stamps(profile, run):
    return {p.name: p.stat().st_mtime_ns for p in run_dir(profile, run, "test", "audio").glob("shard-*.parquet")}


def test_a_changed_question_is_answered_again_and_only_its_shard(setup):
    profile, clips = setup
    adapter = load_model("qwen2-audio", profile)
    evaluate(adapter, profile, clips, "audio", "test", run="relabel", shard_size=3, progress=False)
    before = _stamps(profile, "relabel")
    changed = clips.copy()
    row = changed.index[changed["clip"] == "clip04_000001"][0]  # shard 1 of the clips in order
    options = list(changed.at[row, "options"])
    letter = "A" if changed.at[row, "answer"] != "A" else "B"
    changed.at[row, "label"] = options[LETTERS.index(letter)]  # relabelled: another option is the answer
    changed.at[row, "answer"] = letter
    again = evaluate(adapter, profile, changed, "audio", "test", run="relabel", shard_size=3, progress=False)
    after = _stamps(profile, "relabel")
    assert after["shard-00001.parquet"] != before["shard-00001.parquet"]
    assert {k: v for k, v in after.items() if k != "shard-00001.parquet"} == {k: v for k, v in before.items() if k != "shard-00001.parquet"}
    got = again.set_index("clip").loc["clip04_000001"]
    assert got["answer"] == letter and got["correct"] == (got["predicted"] == letter)
    # and model_answers does not hand back the old answers either
    from xmd_core.evaluate import model_answers

    evaluate(adapter, profile, changed, "audio", "test", run="relabel-read-back", progress=False)
    third = model_answers(profile, "qwen2-audio", clips, "test", "audio", run="relabel-read-back", progress=False)
    assert third.set_index("clip").loc["clip04_000001", "answer"] == clips.set_index("clip").loc["clip04_000001", "answer"]


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_an_unreadable_shard_is_reported_and_answered_again(setup, damage, capsys):
    profile, clips = setup
    adapter = load_model("qwen2-audio", profile)
    run = f"damaged-{damage}"
    whole = evaluate(adapter, profile, clips, "audio", "test", run=run, shard_size=3, progress=False)
    shard = run_dir(profile, run, "test", "audio") / "shard-00000.parquet"
    shard.write_bytes(b"" if damage == "empty" else shard.read_bytes()[:40])
    redone = evaluate(adapter, profile, clips, "audio", "test", run=run, shard_size=3, progress=False)
    printed = capsys.readouterr()
    assert "shard-00000.parquet: cannot be read" in printed.out + printed.err
    pd.testing.assert_frame_equal(redone[["clip", "predicted", "error"]], whole[["clip", "predicted", "error"]])


def test_an_empty_split_is_refused_before_a_record_is_written(setup):
    profile, clips = setup
    adapter = load_model("qwen2-audio", profile)
    with pytest.raises(ValueError, match=r"no clips to evaluate in split 'test'"):
        evaluate(adapter, profile, clips.head(0), "audio", "test", run="empty", progress=False)
    assert not (run_dir(profile, "empty", "test", "audio") / "run.json").exists()


@pytest.mark.parametrize("damage", ["record removed", "record cut short", "record without key"])
def test_shards_without_a_readable_record_are_answered_again(setup, damage, capsys):
    """A run writes its record before its first shard, so shards without a readable record are
    of unknown origin: never trusted, answered again."""
    profile, clips = setup
    adapter = load_model("qwen2-audio", profile)
    run = f"norecord-{damage.split()[1]}-{damage.split()[-1]}"
    whole = evaluate(adapter, profile, clips, "audio", "test", run=run, shard_size=4, progress=False)
    folder = run_dir(profile, run, "test", "audio")
    shard = folder / "shard-00000.parquet"
    pd.read_parquet(shard).assign(predicted="A").to_parquet(shard)  # answers no run of this record gave
    if damage == "record removed":
        (folder / "run.json").unlink()
    elif damage == "record cut short":
        (folder / "run.json").write_text('{"key": {"clips"')
    else:  # an older layout's record: readable, finished, but no key says what it holds
        record = json.loads((folder / "run.json").read_text())
        record["plan"] = record.pop("key")
        (folder / "run.json").write_text(json.dumps(record))
    if damage != "record without key":
        with pytest.raises(FileNotFoundError, match="run.json: missing or unreadable"):
            load_record(profile, run, "test", "audio")
    again = evaluate(adapter, profile, clips, "audio", "test", run=run, shard_size=4, progress=True)
    assert "no readable run.json with a key says what answered its shards" in capsys.readouterr().out
    assert again["predicted"].tolist() == whole["predicted"].tolist()
    assert load_record(profile, run, "test", "audio")["status"] == "done"
