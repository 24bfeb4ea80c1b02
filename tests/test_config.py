import dataclasses

import pytest

from xmd_core.config import ConfigError, load_profile, replace


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
    assert tiny.mcq == full.mcq


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
        ("data:\n  source: youtube\n", "data.source"),
        ("data:\n  source: vggsound\n", "clips_dir"),
        ("modles: {}\n", "modles"),
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
