"""Tests of the embedded world generator (xmd_core.world) on the smoke world, built into tmp dirs."""

from __future__ import annotations

import colorsys
import dataclasses
import json
import math
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest

from xmd_core import data, media
from xmd_core.config import load_profile, replace
from xmd_core.world import (
    EAR_SPREAD,
    EYE_SPREAD,
    GROUPS,
    build_world,
    class_signature,
    draw_clip,
    load_clips,
    plan_world,
    render_clip,
    select_classes,
    signatures,
    write_mp4,
)
from xmd_core.world.audio import signature_sound
from xmd_core.world.classes import normalise_name

YTID = re.compile(r"^[A-Za-z0-9_-]{11}$")


def smoke_at(root: Path, **world):
    profile = dataclasses.replace(load_profile("smoke"), artifacts_dir=Path(root))
    return replace(profile, world=world) if world else profile


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """The smoke world, built once with a pool of 2 workers."""
    profile = smoke_at(tmp_path_factory.mktemp("world_a"))
    return profile, build_world(profile, workers=2, progress=False)


# --- classes --------------------------------------------------------------------------------


def test_select_classes_groups_sizes_and_rates():
    cfg = load_profile("tiny").world
    table = select_classes(cfg)
    assert table.columns[:6].tolist() == ["label", "category", "count", "p_audible", "p_visible", "group"]
    sizes = table.group.value_counts()
    assert [sizes.get(g, 0) for g in GROUPS] == [cfg.classes_per_group] * 3 + [cfg.unseen_classes]
    assert table.label.is_unique
    pd.testing.assert_frame_equal(table, select_classes(cfg))  # from the facts alone
    pd.testing.assert_frame_equal(table, select_classes(dataclasses.replace(cfg, seed=7)))
    # the counts are VGGSound's, the rates VGGSounder's
    stat = data.read_stat().set_index("label")
    assert (table["count"].to_numpy() == stat.loc[table.label, "count"].to_numpy()).all()
    assert (table.category.to_numpy() == stat.loc[table.label, "category"].to_numpy()).all()
    gap = (table.p_audible - table.p_visible).groupby(table.group).mean()
    assert gap["heard"] > 0.5 and gap["seen"] < -0.15 and abs(gap["both"]) < 0.1
    assert gap["heard"] > gap["both"] > gap["seen"]
    assert "wind noise" in set(table.label[table.group == "heard"])
    assert "playing lacrosse" in set(table.label[table.group == "seen"])
    # spread over categories: no group of 10 draws more than 3 from one category
    for group in ("heard", "seen", "both"):
        assert table[table.group == group].category.value_counts().max() <= 3
        assert table[table.group == group].category.nunique() >= 5
    assert set(table.category) <= set(EAR_SPREAD) and set(EAR_SPREAD) == set(EYE_SPREAD)


def test_unseen_classes_are_audioset_classes():
    world = load_profile("tiny").world
    table = select_classes(world)
    audioset = data.read_audioset_labels().display_name
    by_norm = {normalise_name(n): n for n in audioset}
    unseen = table[table.group == "unseen"]
    assert len(unseen) == world.unseen_classes == 20
    for label, name in zip(unseen.label, unseen.audioset_name):
        assert name in set(audioset)
        assert label.lower() == name.lower() or by_norm[normalise_name(label)] == name
    assert (table.audioset_name[table.group != "unseen"] == "").all()
    assert normalise_name("Wind noise (microphone)") == normalise_name("wind noise")


def test_class_signatures_follow_the_designed_gap():
    """Classes of an ear-confusable category sit closer in sound than in sight, and the
    reverse for people."""
    seed = 0
    stat = data.read_stat()

    def spread(category, modality):
        labels = stat.label[stat.category == category].tolist()[:8]
        vecs = np.array([getattr(class_signature(seed, lab, category), modality) for lab in labels])
        return np.abs(vecs[:, None] - vecs[None]).max(axis=(0, 1)).mean()

    assert spread("sports", "audio") < 0.2 < 0.5 < spread("sports", "video")
    assert spread("tools", "audio") < 0.2 < 0.5 < spread("tools", "video")
    assert spread("people", "video") < 0.2 < 0.5 < spread("people", "audio")


# --- draws ----------------------------------------------------------------------------------


def test_draw_rates_follow_class_rates():
    cfg = load_profile("tiny").world
    n = 3000
    for p_a, p_v in ((0.95, 0.1), (0.4, 0.97), (0.7, 0.7)):
        draws = [draw_clip(cfg, "wind noise", "nature", "heard", p_a, p_v, "train", i, ("thunder",)) for i in range(n)]
        for p, seen in ((p_a, np.mean([d.audible for d in draws])), (p_v, np.mean([d.visible for d in draws]))):
            assert abs(seen - p) < 4 * math.sqrt(p * (1 - p) / n), (p, seen)
        silent = [d for d in draws if not d.audible]
        assert all(math.isnan(d.snr_db) for d in silent)
        assert all(not math.isnan(d.snr_db) and d.distractor == "" for d in draws if d.audible)
        share = np.mean([d.distractor == "thunder" for d in silent])
        assert 0.1 < share < 0.4  # a faint other class at times


def test_draws_are_deterministic_and_seeded():
    cfg = load_profile("tiny").world
    args = ("cricket chirping", "animals", "heard", 0.99, 0.1, "test", 3, ("wind noise",))
    a, b = draw_clip(cfg, *args), draw_clip(cfg, *args)
    assert a == b
    other = draw_clip(dataclasses.replace(cfg, seed=1), *args)
    assert other.ytid != a.ytid and other.media_seed != a.media_seed
    assert YTID.match(a.ytid) and 0 <= a.start < 300
    assert a.clip == data.clip_name(a.ytid, a.start)


def test_tiny_plan_sizes():
    cfg = load_profile("tiny").world
    table, draws = plan_world(cfg)
    clips = pd.DataFrame([d.row() for d in draws])
    assert clips["clip"].is_unique and clips.ytid.map(lambda s: bool(YTID.match(s))).all()
    per = clips.groupby(["group", "split"]).size()
    k = cfg.classes_per_group
    for g in ("heard", "seen", "both"):
        assert per[(g, "pretrain")] == k * cfg.pretrain_per_class
        assert per[(g, "train")] == k * cfg.train_per_class
        assert per[(g, "test")] == k * cfg.test_per_class
    # unseen classes: pre-trained, but outside the VGGSound splits
    assert per[("unseen", "pretrain")] == cfg.unseen_classes * cfg.pretrain_per_class
    assert per[("unseen", "unseen")] == cfg.unseen_classes * cfg.unseen_per_class
    assert ("unseen", "train") not in per.index and ("unseen", "test") not in per.index
    seen_in_splits = 3 * k * (cfg.pretrain_per_class + cfg.train_per_class + cfg.test_per_class)
    assert len(clips) == seen_in_splits + cfg.unseen_classes * (cfg.pretrain_per_class + cfg.unseen_per_class) == 17500


def test_a_larger_unseen_split_keeps_every_other_clip():
    """unseen_per_class adds clips to the unseen split only; the others are drawn as before.
    (The experts still change: the unseen questions' AudioSet options join their vocabulary.)"""
    cfg = load_profile("smoke").world
    assert cfg.unseen_per_class == 0  # as many as test_per_class
    _, base = plan_world(cfg)
    _, larger = plan_world(dataclasses.replace(cfg, unseen_per_class=3 * cfg.test_per_class))
    base_rows = pd.DataFrame([d.row() for d in base])
    larger_rows = pd.DataFrame([d.row() for d in larger])
    assert (larger_rows.split == "unseen").sum() == 3 * (base_rows.split == "unseen").sum() > 0
    kept = larger_rows[larger_rows["clip"].isin(base_rows["clip"])].set_index("clip").sort_index()
    pd.testing.assert_frame_equal(kept, base_rows.set_index("clip").sort_index())


# --- the built world ------------------------------------------------------------------------


@pytest.mark.slow
def test_index_files_in_vggsound_formats(smoke):
    profile, paths = smoke
    cfg = profile.world
    classes = pd.read_csv(paths.classes_table, keep_default_na=False)
    pd.testing.assert_frame_equal(classes, select_classes(cfg), check_dtype=False)
    unseen = set(classes.label[classes.group == "unseen"])

    # no header; the first field of the first line is an id, the second a whole number
    first = paths.index_csv.read_text().splitlines()[0].split(",")
    assert YTID.match(first[0]) and first[1].isdigit()
    index = data.read_index_csv(paths.index_csv)
    assert set(index.split) == {"train", "test"}
    per = index.groupby(["label", "split"]).size().unstack()
    assert set(per.index) == set(classes.label) - unseen
    assert (per["train"] == cfg.train_per_class).all() and (per["test"] == cfg.test_per_class).all()

    pretrain = data.read_index_csv(paths.pretrain_csv)
    assert (pretrain.split == "pretrain").all()
    assert set(pretrain.label) == set(classes.label)
    assert (pretrain.groupby("label").size() == cfg.pretrain_per_class).all()

    held_out = data.read_index_csv(paths.unseen_csv)
    assert (held_out.split == "unseen").all() and set(held_out.label) == unseen
    assert (held_out.groupby("label").size() == cfg.test_per_class).all()

    stat = data.read_stat(paths.stat_csv)
    real = data.read_stat().set_index("label")
    assert stat.label.tolist() == classes.label.tolist()
    assert (stat["count"].to_numpy() == real.loc[stat.label, "count"].to_numpy()).all()
    assert (stat.category.to_numpy() == real.loc[stat.label, "category"].to_numpy()).all()

    clips = load_clips(paths)
    for column in ("clip", "ytid", "start", "label", "category", "group", "split", "audible", "visible", "snr_db"):
        assert column in clips.columns
    assert len(clips) == len(index) + len(pretrain) + len(held_out)
    assert set(clips["clip"]) == set(index["clip"]) | set(pretrain["clip"]) | set(held_out["clip"])
    assert clips.audible.dtype == bool and clips.visible.dtype == bool

    manifest = json.loads(paths.manifest.read_text())
    assert manifest["status"] == "done" and manifest["key"]["config_hash"] == profile.config_hash("world")
    assert manifest["clips"] == len(clips) and manifest["seed"] == cfg.seed
    assert {"versions", "build", "design", "per_group"} <= set(manifest)


@pytest.mark.slow
def test_clips_are_valid_mp4(smoke):
    profile, paths = smoke
    cfg = profile.world
    clips = load_clips(paths)
    assert sorted(p.stem for p in paths.clips_dir.iterdir()) == sorted(clips["clip"])
    for clip in clips["clip"].iloc[::25]:
        path = paths.clip_path(clip)
        with av.open(str(path)) as container:
            assert container.format.name.startswith("mov,mp4")
            (video,), (audio,) = container.streams.video, container.streams.audio
            assert len(container.streams) == 2
            assert video.codec_context.name == "h264" and video.codec_context.pix_fmt == "yuv420p"
            assert (video.width, video.height) == (cfg.width, cfg.height)
            assert video.average_rate == cfg.fps
            assert video.frames == round(cfg.duration_s * cfg.fps)
            assert float(video.duration * video.time_base) == pytest.approx(cfg.duration_s)
            assert audio.codec_context.name == "aac" and audio.rate == cfg.audio_rate and audio.channels == 1
            assert float(audio.duration * audio.time_base) == pytest.approx(cfg.duration_s, abs=0.1)
        info = media.probe(path)
        assert info.has_audio and info.has_video
        frames = media.load_frames(path, fps=1.0)
        assert frames.shape == (max(1, int(cfg.duration_s)), cfg.height, cfg.width, 3)
        samples = media.load_audio(path, 16000)
        assert abs(len(samples) - cfg.duration_s * 16000) < 0.1 * 16000
        assert np.abs(samples).max() > 0.01


@pytest.mark.slow
def test_same_seed_same_world_other_seed_other_world(smoke, tmp_path):
    profile, paths = smoke
    again = build_world(smoke_at(tmp_path / "b"), workers=1, progress=False)
    for name in ("index_csv", "pretrain_csv", "unseen_csv", "stat_csv", "clips_table", "classes_table"):
        assert getattr(again, name).read_bytes() == getattr(paths, name).read_bytes(), name
    clips = load_clips(paths)["clip"]
    for clip in clips:  # x264 and the AAC encoder are deterministic single-threaded
        assert again.clip_path(clip).read_bytes() == paths.clip_path(clip).read_bytes(), clip
    for clip in clips.iloc[:3]:
        np.testing.assert_array_equal(media.load_frames(again.clip_path(clip)), media.load_frames(paths.clip_path(clip)))
        np.testing.assert_array_equal(media.load_audio(again.clip_path(clip)), media.load_audio(paths.clip_path(clip)))

    other = build_world(smoke_at(tmp_path / "c", seed=1), workers=1, progress=False)
    a, b = load_clips(paths), load_clips(other)
    assert a.label.tolist() == b.label.tolist()  # same classes, other clips
    assert not set(a["clip"]) & set(b["clip"])
    first_a, first_b = paths.clip_path(a["clip"].iloc[0]), other.clip_path(b["clip"].iloc[0])
    assert not np.array_equal(media.load_audio(first_a), media.load_audio(first_b))


@pytest.mark.slow
def test_complete_world_returns_at_once_and_resumes(smoke, tmp_path):
    profile, paths = smoke
    root = tmp_path / "copy"
    shutil.copytree(paths.root.parent, root)
    copy = dataclasses.replace(profile, artifacts_dir=root)
    clips_dir = copy.world_dir / "clips"
    before = {p.name: p.stat().st_mtime_ns for p in clips_dir.iterdir()}
    manifest = (copy.world_dir / "world.json").read_bytes()

    started = time.perf_counter()
    build_world(copy, workers=1, progress=False)
    assert time.perf_counter() - started < 1.0
    assert (copy.world_dir / "world.json").read_bytes() == manifest
    assert {p.name: p.stat().st_mtime_ns for p in clips_dir.iterdir()} == before

    removed = sorted(before)[:5]
    for name in removed:
        (clips_dir / name).unlink()
    (clips_dir / (removed[0] + ".part")).write_bytes(b"half a clip from a killed build")
    build_world(copy, workers=1, progress=False)
    after = {p.name: p.stat().st_mtime_ns for p in clips_dir.iterdir()}
    assert set(after) == set(before)  # the .part is gone
    assert {n for n in after if after[n] != before[n]} == set(removed)
    for name in removed:
        assert (clips_dir / name).read_bytes() == (paths.clips_dir / name).read_bytes()
    record = json.loads((copy.world_dir / "world.json").read_text())
    assert record["status"] == "done" and record["build"]["clips_written"] == 5


@pytest.mark.slow
def test_changed_config_rebuilds_everything(smoke, tmp_path):
    profile, paths = smoke
    root = tmp_path / "copy"
    shutil.copytree(paths.root.parent, root)
    changed = smoke_at(root, test_per_class=2)
    out = build_world(changed, workers=1, progress=False)
    record = json.loads(out.manifest.read_text())
    assert record["key"]["config_hash"] == changed.config_hash("world") != profile.config_hash("world")
    assert record["build"]["clips_written"] == record["clips"] == len(load_clips(out))
    assert sorted(p.stem for p in out.clips_dir.iterdir()) == sorted(load_clips(out)["clip"])


def test_clips_of_unknown_origin_are_never_deleted(tmp_path):
    """A clips folder without a world manifest was not written by a world build: refused, kept."""
    profile = smoke_at(tmp_path)
    clips_dir = profile.world_dir / "clips"
    clips_dir.mkdir(parents=True)
    precious = clips_dir / "someone_else_000001.mp4"
    precious.write_bytes(b"not ours")
    with pytest.raises(RuntimeError, match=r"no world manifest .*not deleting"):
        build_world(profile, workers=1, progress=False)
    assert precious.read_bytes() == b"not ours"


@pytest.mark.slow
def test_two_builds_at_once_on_a_fresh_folder_both_end_with_one_world(smoke, tmp_path):
    _, paths = smoke
    script = (
        "import dataclasses, sys; from pathlib import Path; from xmd_core.config import load_profile; "
        "from xmd_core.world import build_world; "
        "p = dataclasses.replace(load_profile('smoke'), artifacts_dir=Path(sys.argv[1])); build_world(p, workers=1, progress=False)"
    )
    runs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errors = [run.communicate(timeout=600)[1] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], errors
    built = tmp_path / "world" / "clips"
    assert sorted(p.name for p in built.iterdir()) == sorted(p.name for p in paths.clips_dir.iterdir())
    assert json.loads((tmp_path / "world" / "world.json").read_text())["status"] == "done"


# --- what a clip carries --------------------------------------------------------------------


def _draws_of(cfg, table, label, n, **changes):
    row = table.set_index("label").loc[label]
    out = []
    for i in range(n):
        d = draw_clip(cfg, label, row.category, row.group, row.p_audible, row.p_visible, "test", i, tuple(table.label))
        out.append(dataclasses.replace(d, **changes))
    return out


def _band_share(samples: np.ndarray, band: np.ndarray) -> float:
    power = np.abs(np.fft.rfft(samples, n=2 * (len(band) - 1))) ** 2
    return float(power[band].sum() / power.sum())


@pytest.mark.slow
@pytest.mark.parametrize("label", ["cricket chirping", "playing tennis", "driving snowmobile"])
def test_inaudible_clip_lacks_the_signature(tmp_path, label):
    """The share of a clip's power in the class signature's own frequency band (the bins that
    hold 80% of a clean rendition's power) is much larger when the clip is audible, also after
    AAC encoding and decoding at 16 kHz. Recorded clean, with a faint venue: the wild chain and
    a loud ambience (`domain`, `context`) cover the band on purpose, and are tested apart."""
    cfg = load_profile("smoke").world
    table = select_classes(cfg)
    sigs = signatures(cfg, table)
    sig = sigs[label]
    sr, n = 16000, 32000
    clean = np.mean(
        [np.abs(np.fft.rfft(signature_sound(sig.category, np.asarray(sig.audio), np.random.default_rng(i), n, sr))) ** 2 for i in range(4)],
        axis=0,
    )
    order = np.argsort(clean)[::-1]
    band = np.zeros(len(clean), dtype=bool)
    band[order[: np.searchsorted(np.cumsum(clean[order]) / clean.sum(), 0.8) + 1]] = True
    assert band.mean() < 0.35  # the signature is a distinct part of the spectrum

    shares = {}
    for audible in (True, False):
        dry = dict(domain="clean", context_db=-10.0, reverb_s=math.nan, lowpass_hz=math.nan, highpass_hz=math.nan, noise_db=math.nan)
        draws = _draws_of(cfg, table, label, 6, audible=audible, snr_db=6.0 if audible else math.nan, distractor="", **dry)
        values = []
        for d in draws:
            frames, samples = render_clip(cfg, d, sigs)
            path = tmp_path / f"{d.clip}_{audible}.mp4"
            write_mp4(path, frames, samples, cfg.fps, cfg.audio_rate)
            decoded = media.load_audio(path, sr)[:n]
            values.append(_band_share(np.pad(decoded, (0, n - len(decoded))), band))
        shares[audible] = float(np.mean(values))
    assert shares[True] > 3 * shares[False], shares


def _object_pixels(frames: np.ndarray, hue: float) -> np.ndarray:
    """Per frame, the share of pixels that are saturated and of the object's hue."""
    x = frames.reshape(-1, 3).astype(float) / 255.0
    hsv = np.array([colorsys.rgb_to_hsv(*p) for p in x]).reshape(frames.shape)
    dist = np.abs(((hsv[..., 0] - hue) + 0.5) % 1.0 - 0.5)
    hit = (hsv[..., 1] > 0.5) & (hsv[..., 2] > 0.4) & (dist < 0.06)
    return hit.reshape(len(frames), -1).mean(axis=1)


@pytest.mark.slow
def test_object_shows_in_every_frame_only_when_visible(tmp_path):
    cfg = load_profile("smoke").world
    table = select_classes(cfg)
    sigs = signatures(cfg, table)
    label = "playing tennis"
    hue = sigs[label].video[1]
    for visible in (True, False):
        for d in _draws_of(cfg, table, label, 4, visible=visible, bystander=False):
            frames, samples = render_clip(cfg, d, sigs)
            share = _object_pixels(frames, hue)
            if visible:
                assert share.min() > 0.02, share  # whole object in every frame
            else:
                assert share.max() < 0.005, share
            path = tmp_path / f"{d.clip}.mp4"
            write_mp4(path, frames, samples, cfg.fps, cfg.audio_rate)
            decoded = _object_pixels(media.load_frames(path, fps=1.0), hue)
            assert (decoded.min() > 0.02) if visible else (decoded.max() < 0.005)


def test_people_clips_always_show_a_person():
    cfg = load_profile("tiny").world
    table = select_classes(cfg)
    sigs = signatures(cfg, table)
    label = "people running"
    for visible in (True, False):
        for d in _draws_of(cfg, table, label, 3, visible=visible):
            frames, _ = render_clip(cfg, d, sigs)
            # the badge: a small patch of fully saturated colour on the shirt, in every frame
            x = frames.astype(float) / 255.0
            sat = (x.max(-1) - x.min(-1)) / np.maximum(x.max(-1), 1e-6)
            assert ((sat > 0.9) & (x.max(-1) > 0.9)).reshape(len(frames), -1).sum(axis=1).min() >= 4
