"""The `xmd` command line: names and combinations are checked before any work starts (exit 2,
one line), and a failure while working is one line too (exit 1; `--debug` shows the traceback)."""

from __future__ import annotations

import pytest

from xmd_core.cli import main
from xmd_core.cli_checks import UsageError, check_run_name


def _fails(argv, capsys, status: int) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == status
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["eval", "--model", "qwen3-audio", "--condition", "audio", "--split", "test"], ["'qwen3-audio'", "qwen2-audio, qwen2-vl"]),
        (["eval", "--model", "qwen2-audio", "--condition", "silent_video", "--split", "test"], ["qwen2-audio takes audio"]),
        (["eval", "--model", "qwen2-audio", "--condition", "audio", "--split", "test", "--run", "../../.."], ["'../../..'"]),
        (["eval", "--model", "qwen2-audio", "--condition", "audio", "--split", "test", "--shard-size", "0"], ["--shard-size"]),
        (["distill", "--teacher", "qwen2-vl", "--student", "qwen2-vl", "--recipe", "ground-truth"], ["both 'qwen2-vl'"]),
        (["distill", "--teacher", "qwen2.5-vl", "--student", "qwen2-vl"], ["both take silent_video"]),
        (["distill", "--teacher", "gpt-4o"], ["--teacher", "'gpt-4o'"]),
        (["study", "--only", "03_swich"], ["'03_swich'", "03_switch"]),
        (["experts", "--models", "kimi-audio"], ["no tiny version"]),
        (["experts", "--jobs", "0"], ["--jobs must be at least 1"]),
        (["index", "--profile", "no-such-profile"], ["no-such-profile"]),
        (["book", "--screenshots", "shots"], ["--screenshots needs --check"]),
    ],
)
def test_usage_errors_exit_2_with_one_line_naming_the_value(argv, names, capsys):
    err = _fails(argv, capsys, 2)
    for name in names:
        assert name in err


@pytest.mark.parametrize("name", ["qwen2-audio", "qwen2-audio@generate", "a.b_c+d-1"])
def test_ordinary_run_names_pass(name):
    assert check_run_name(name) == name


@pytest.mark.parametrize("name", ["../x", "a/b", ".hidden", "a..b", ""])
def test_run_names_that_could_leave_the_results_folder_are_refused(name):
    with pytest.raises(UsageError):
        check_run_name(name)


def _profile_with_index(tmp_path, index_text: str):
    index = tmp_path / "vggsound.csv"
    index.write_text(index_text)
    profile = tmp_path / "profiles" / "broken.yaml"
    profile.parent.mkdir()
    profile.write_text(
        f"name: broken\nartifacts_dir: artifacts\nresults_dir: results\n"
        f"data:\n  source: vggsound\n  clips_dir: {tmp_path / 'clips'}\n  index_csv: {index}\n"
        + "".join(f"{section}: {{}}\n" for section in ("splits", "media", "mcq", "models", "switch", "distill"))
    )
    return profile


def test_a_malformed_index_line_is_one_line_naming_file_and_line(tmp_path, capsys):
    profile = _profile_with_index(tmp_path, "abc,1,dog barking,train\nabc,1x,dog barking,train\n")
    err = _fails(["index", "--profile", str(profile)], capsys, 1)
    assert "vggsound.csv:2: start second '1x'" in err


def test_a_failure_while_working_exits_1_with_one_line_and_debug_shows_the_traceback(tmp_path, capsys):
    profile = _profile_with_index(tmp_path, "abc,1,dog barking,train\nabc,1,dog barking,train\n")
    err = _fails(["index", "--profile", str(profile)], capsys, 1)
    assert "'abc_000001' is listed 2 times" in err and "vggsound.csv:2" in err and "--debug" in err
    from xmd_core.index_check import IndexError_

    with pytest.raises(IndexError_):
        main(["index", "--profile", str(profile), "--debug"])


def test_the_library_keeps_run_folders_inside_the_predictions_folder():
    from xmd_core.config import load_profile
    from xmd_core.evaluate import run_dir

    profile = load_profile("smoke")
    assert run_dir(profile, "qwen2-audio@from-qwen2-vl-teacher-kl+labels", "test", "audio").parent.parent.parent == profile.results_dir / "predictions"
    with pytest.raises(ValueError, match="one folder name"):
        run_dir(profile, "../../..", "test", "audio")
