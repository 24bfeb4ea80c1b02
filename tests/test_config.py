import dataclasses

import pytest

from xmd_core.config import ConfigError, WorldConfig, load_profile, replace


@pytest.mark.parametrize("name", ["smoke", "tiny", "full"])
def test_every_profile_loads(name):
    profile = load_profile(name)
    assert profile.name == name
    assert profile.artifacts_dir.is_absolute()
    with pytest.raises(dataclasses.FrozenInstanceError):
        profile.name = "other"


def test_profiles_differ_only_in_sizes_and_paths():
    tiny, full = load_profile("tiny"), load_profile("full")
    assert tiny.data.source == "world" and full.data.source == "vggsound"
    assert tiny.media == dataclasses.replace(full.media, workers=tiny.media.workers)
    # the unseen classes' distractors are data: the names the profile's models can know (the
    # world's classes for the tiny experts, AudioSet's for the real LLMs); the rest is the protocol
    assert (tiny.mcq.unseen_options, full.mcq.unseen_options) == ("audioset-known", "audioset")
    assert tiny.mcq == dataclasses.replace(full.mcq, unseen_options=tiny.mcq.unseen_options)


def _write(tmp_path, text):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nartifacts_dir: a\nresults_dir: r\n" + text)
    return path


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("world:\n  duration_s: -1\n", "world.duration_s"),
        ("world:\n  width: 17\n", "world.width"),
        ("media:\n  fps: 'one'\n", "media.fps"),
        ("media:\n  sample_rate: true\n", "media.sample_rate"),
        ("splits:\n  analysis_per_class: 5\n  switch_val_per_class: 5\n", "splits.switch_val_per_class"),
        ("mcq:\n  n_options: 11\n", "mcq.n_options"),
        ("mcq:\n  n_option: 10\n", "n_option"),
        ("mcq:\n  unseen_options: wordnet\n", "mcq.unseen_options"),
        ("world:\n  unseen_per_class: -1\n", "world.unseen_per_class"),
        ("data:\n  source: youtube\n", "data.source"),
        ("data:\n  source: vggsound\n", "clips_dir"),
        ("modles: {}\n", "modles"),
        ("models:\n  hub_ids:\n    videollama: some/id\n", "models.hub_ids"),
        ("models:\n  hub_ids: [videollama3]\n", "models.hub_ids"),
    ],
)
def test_bad_values_name_the_key(tmp_path, text, names):
    with pytest.raises(ConfigError, match=names.replace(".", r"\.")) as info:
        load_profile(_write(tmp_path, text))
    assert "bad.yaml" in str(info.value)


def test_unknown_profile_lists_the_known_ones():
    with pytest.raises(ConfigError, match="smoke"):
        load_profile("nonexistent")


def test_replace_validates_and_changes_the_hash():
    tiny = load_profile("tiny")
    other = replace(tiny, world={"seed": 1})
    assert other.world.seed == 1 and other.config_hash("world") != tiny.config_hash("world")
    assert other.config_hash("media") == tiny.config_hash("media")
    with pytest.raises(ConfigError, match="world.fps"):
        replace(tiny, world={"fps": 0})



def _drop_section(text: str, name: str) -> str:
    """A profile's YAML without one top-level section (its line and the indented ones after it)."""
    kept, inside = [], False
    for line in text.splitlines():
        if not line.startswith((" ", "#")) and line.strip():
            inside = line.startswith(f"{name}:")
        if not inside:
            kept.append(line)
    return "\n".join(kept) + "\n"


def test_a_missing_section_is_refused_by_name_and_an_empty_one_takes_its_defaults(tmp_path):
    tiny = load_profile("tiny").source_file.read_text()
    path = tmp_path / "no_world.yaml"
    path.write_text(_drop_section(tiny, "world"))
    with pytest.raises(ConfigError, match=r"no_world\.yaml: missing section\(s\) world"):
        load_profile(path)
    path.write_text(_drop_section(tiny, "world") + "world: {}\n")
    assert load_profile(path).world == WorldConfig()
    assert load_profile("full").data.source == "vggsound"  # reads VGGSound: no world, no experts to state


def test_relative_paths_resolve_against_the_profile_folder_outside_the_repository(tmp_path, monkeypatch):
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    path = folder / "mine.yaml"
    sections = "".join(f"{name}: {{}}\n" for name in ("splits", "media", "mcq", "models", "switch", "distill"))
    path.write_text("name: mine\nartifacts_dir: art\nresults_dir: res\n"
                    "data:\n  source: vggsound\n  clips_dir: clips\n  index_csv: ../index/vggsound.csv\n" + sections)
    monkeypatch.chdir(tmp_path)  # not the current directory's
    profile = load_profile(path)
    assert profile.artifacts_dir == folder / "art" and profile.results_dir == folder / "res"
    assert profile.data.clips_dir == str(folder / "clips") and profile.data.index_csv == str(tmp_path / "index" / "vggsound.csv")
    tiny = load_profile("tiny")  # the repository's profiles: against the repository root
    assert tiny.artifacts_dir == tiny.source_file.parents[1] / "artifacts" / "tiny"
