"""Building the embedded world on disk: the plan (every clip's draw), the index files in
VGGSound's formats, the mp4 clips (in parallel, resumable) and the manifest `world.json`.

Layout under `profile.world_dir`::

    clips/{ytid}_{start:06d}.mp4   H.264 (yuv420p) + AAC, width x height at fps, duration_s long
    vggsound.csv                   ytid,start,label,split   (no header; split train / test)
    pretrain.csv                   ytid,start,label,pretrain (no header; every class)
    unseen.csv                     ytid,start,label,unseen  (no header; the unseen classes only)
    stat.csv                       label,count,category      (no header; real VGGSound counts)
    clips.csv                      every clip with its draw (header)
    classes.csv                    the `select_classes` table (header)
    world.json                     key (config hash, generator version), status, sizes, counts, versions, timings

A build is a part-wise step of the artifact store (`store`), a clip at a time: `world.json` is
written "running" with its key before the first clip and "done" after the last, so a complete
world with the same key returns at once, and a killed build redoes only the clips that are
missing (each mp4 is written to a `.part` file and renamed when whole). Clips under another key
are removed; files with no manifest at all were not written by a build and are never deleted.
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import av
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..atomic import write_atomically
from ..config import Profile, WorldConfig
from ..locks import exclusive
from .. import store
from . import classes as classes_mod
from . import context, domain
from .classes import PRETRAIN_GROUPS, select_classes
from .clips import ClipDraw, Signature, draw_clip, render_clip, signatures

#: Bump when the generator changes what it writes: a world built by another version is rebuilt.
GENERATOR_VERSION = "6"  # 6: milder band limits of wild clips; 5: web video in pre-training; 4: venues (context) and recording domains
PART_SUFFIX = ".part"
X264_OPTIONS = {"preset": "ultrafast", "tune": "zerolatency", "qp": "20", "threads": "1"}
AAC_OPTIONS = {"aac_coder": "fast"}
AAC_BITRATE = 64000


@dataclass(frozen=True)
class WorldPaths:
    root: Path
    clips_dir: Path
    index_csv: Path  # vggsound.csv: train + test
    pretrain_csv: Path
    unseen_csv: Path
    stat_csv: Path
    clips_table: Path  # clips.csv
    classes_table: Path  # classes.csv
    manifest: Path  # world.json

    @classmethod
    def at(cls, root: str | Path) -> "WorldPaths":
        root = Path(root)
        return cls(
            root=root,
            clips_dir=root / "clips",
            index_csv=root / "vggsound.csv",
            pretrain_csv=root / "pretrain.csv",
            unseen_csv=root / "unseen.csv",
            stat_csv=root / "stat.csv",
            clips_table=root / "clips.csv",
            classes_table=root / "classes.csv",
            manifest=root / "world.json",
        )

    def clip_path(self, clip: str) -> Path:
        return self.clips_dir / f"{clip}.mp4"


def world_paths(profile: Profile) -> WorldPaths:
    return WorldPaths.at(profile.world_dir)


# --- the plan -------------------------------------------------------------------------------


def plan_world(world: WorldConfig) -> tuple[pd.DataFrame, list[ClipDraw]]:
    """The class table and every clip's draw, in a fixed order (class, split, index)."""
    table = select_classes(world)
    labels = tuple(table.label)
    draws: list[ClipDraw] = []
    for row in table.itertuples(index=False):
        sizes = [("pretrain", world.pretrain_per_class)] if row.group in PRETRAIN_GROUPS else []
        if row.group == "unseen":  # outside the VGGSound splits: only the generalisation test
            sizes += [("unseen", world.unseen_per_class or world.test_per_class)]
        else:
            sizes += [("train", world.train_per_class), ("test", world.test_per_class)]
        for split, count in sizes:
            for i in range(count):
                draws.append(
                    draw_clip(world, row.label, row.category, row.group, row.p_audible, row.p_visible, split, i, labels)
                )
    names = [d.clip for d in draws]
    if len(set(names)) != len(names):
        raise RuntimeError("two clips of the world drew the same file name; change the world seed")
    return table, draws


def clips_frame(draws: list[ClipDraw]) -> pd.DataFrame:
    return pd.DataFrame([d.row() for d in draws])


# --- writing one clip -----------------------------------------------------------------------


def write_mp4(path: str | Path, frames: np.ndarray, samples: np.ndarray, fps: int, sample_rate: int) -> None:
    """An mp4 with one H.264 video stream (yuv420p) and one mono AAC audio stream."""
    n_frames, height, width, _ = frames.shape
    with av.open(str(path), mode="w", format="mp4") as container:
        vstream = container.add_stream("libx264", rate=fps, options=dict(X264_OPTIONS))
        vstream.width, vstream.height, vstream.pix_fmt = width, height, "yuv420p"
        vstream.codec_context.thread_count = 1
        astream = container.add_stream("aac", rate=sample_rate, layout="mono")
        astream.codec_context.options = dict(AAC_OPTIONS)
        astream.codec_context.bit_rate = AAC_BITRATE
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(frames[i], format="rgb24")
            frame.pts = i
            container.mux(vstream.encode(frame))
        container.mux(vstream.encode())
        aframe = av.AudioFrame.from_ndarray(samples.reshape(1, -1).astype(np.float32), format="flt", layout="mono")
        aframe.sample_rate = sample_rate
        aframe.pts = 0
        container.mux(astream.encode(aframe))
        container.mux(astream.encode())


_CTX: dict = {}


def _init_worker(world: WorldConfig, sigs: dict[str, Signature], clips_dir: str) -> None:
    _CTX.update(world=world, sigs=sigs, clips_dir=clips_dir)


def _make_clip(draw: ClipDraw) -> str:
    world: WorldConfig = _CTX["world"]
    frames, samples = render_clip(world, draw, _CTX["sigs"])
    final = os.path.join(_CTX["clips_dir"], f"{draw.clip}.mp4")
    part = final + PART_SUFFIX
    write_mp4(part, frames, samples, world.fps, world.audio_rate)
    os.replace(part, final)
    return draw.clip


# --- tables and manifest --------------------------------------------------------------------


def _index_csv(path: Path, rows: pd.DataFrame) -> None:
    write_atomically(path, lambda p: rows[["ytid", "start", "label", "split"]].to_csv(p, header=False, index=False))


def write_tables(paths: WorldPaths, table: pd.DataFrame, draws: list[ClipDraw]) -> pd.DataFrame:
    """Write the index files; returns the clip table."""
    clips = clips_frame(draws)
    _index_csv(paths.index_csv, clips[clips.split.isin(["train", "test"])])
    _index_csv(paths.pretrain_csv, clips[clips.split == "pretrain"])
    _index_csv(paths.unseen_csv, clips[clips.split == "unseen"])
    write_atomically(paths.stat_csv, lambda p: table[["label", "count", "category"]].to_csv(p, header=False, index=False))
    write_atomically(paths.classes_table, lambda p: table.to_csv(p, index=False))
    write_atomically(paths.clips_table, lambda p: clips.to_csv(p, index=False))
    return clips


def _manifest_key(profile: Profile) -> dict:
    return {"config_hash": profile.config_hash("world"), "generator_version": GENERATOR_VERSION}


def _clips_on_disk(clips_dir: Path) -> set[str]:
    if not clips_dir.is_dir():
        return set()
    return {name[:-4] for name in os.listdir(clips_dir) if name.endswith(".mp4")}


def is_complete(profile: Profile) -> bool:
    """The world on disk is whole and was built with this profile's world config."""
    paths = world_paths(profile)
    if not store.finished(paths.root, paths.manifest.name, _manifest_key(profile)):
        return False
    tables = (paths.index_csv, paths.pretrain_csv, paths.unseen_csv, paths.stat_csv, paths.clips_table, paths.classes_table)
    if not all(p.is_file() for p in tables):
        return False
    wanted = pd.read_csv(paths.clips_table, usecols=["clip"])["clip"]
    return set(wanted) <= _clips_on_disk(paths.clips_dir)


def _versions() -> dict:
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "av": av.__version__,
        "libavcodec": ".".join(map(str, av.library_versions["libavcodec"])),
        "libavformat": ".".join(map(str, av.library_versions["libavformat"])),
    }


def _summary(table: pd.DataFrame, clips: pd.DataFrame) -> dict:
    per_group = clips.groupby("group").agg(clips=("clip", "size"), audible=("audible", "mean"), visible=("visible", "mean"))
    return {
        "classes": {g: int((table.group == g).sum()) for g in classes_mod.GROUPS},
        "clips": int(len(clips)),
        "clips_per_split": {k: int(v) for k, v in clips.groupby("split").size().items()},
        "per_group": {
            g: {"clips": int(r.clips), "audible_rate": round(float(r.audible), 4), "visible_rate": round(float(r.visible), 4)}
            for g, r in per_group.iterrows()
        },
    }


def _design() -> dict:
    return {
        "rate_transform": f"p_world = p_real ** {classes_mod.RATE_GAMMA} (same for audible and visible)",
        "rate_gamma": classes_mod.RATE_GAMMA,
        "ear_spread_jitter": {k: list(v) for k, v in classes_mod.EAR_SPREAD.items()},
        "eye_spread_jitter": {k: list(v) for k, v in classes_mod.EYE_SPREAD.items()},
        "selection": {"min_annotated": classes_mod.MIN_ANNOTATED, "category_penalty": classes_mod.CATEGORY_PENALTY},
        "context": {"venues": list(context.VENUE_NAMES), "mixture_alpha": context.MIXTURE_ALPHA},
        "domains": {"context_db": domain.CONTEXT_DB, "reverb_p": domain.REVERB_P, "reverb_t60_s": domain.REVERB_T60_S,
                    "lowpass_hz": domain.LOWPASS_HZ, "highpass_hz": domain.HIGHPASS_HZ, "noise_db": domain.NOISE_DB, "web_video_share": domain.WEB_VIDEO_SHARE},
        "encoding": {"video": {"codec": "libx264", **X264_OPTIONS, "pix_fmt": "yuv420p"}, "audio": {"codec": "aac", **AAC_OPTIONS, "bit_rate": AAC_BITRATE, "channels": 1}},
    }


# --- the build ------------------------------------------------------------------------------


def build_world(profile: Profile, workers: int | None = None, progress: bool = True) -> WorldPaths:
    """Build (or finish, or just find) the embedded world of a profile. See the module doc."""
    paths = world_paths(profile)
    if is_complete(profile):
        return paths
    with exclusive(paths.manifest, f"world {profile.name}", progress):  # two builds at once: one builds, one waits
        if is_complete(profile):
            return paths
        return _build(profile, paths, workers, progress)


def _clear_stale_clips(paths: WorldPaths, key: dict, progress: bool) -> None:
    """Remove the clips of another world config (they carry the same names), but only when the
    manifest proves the folder is a world build's; files of unknown origin are never deleted."""
    if not paths.clips_dir.is_dir() or not any(paths.clips_dir.iterdir()):
        return
    if not paths.manifest.is_file():
        raise RuntimeError(f"{paths.clips_dir} holds files but there is no world manifest ({paths.manifest}): "
                           "not deleting what no world build wrote; move the folder away, or remove it")
    if store.stored_key(paths.root, paths.manifest.name) != key:  # unreadable: a world build's, of unknown config
        if progress:
            tqdm.write(f"{paths.clips_dir}: clips of another world config ({paths.manifest}); building afresh")
        shutil.rmtree(paths.clips_dir)


def _build(profile: Profile, paths: WorldPaths, workers: int | None, progress: bool) -> WorldPaths:
    started = time.perf_counter()
    world = profile.world
    key = _manifest_key(profile)
    _clear_stale_clips(paths, key, progress)
    paths.clips_dir.mkdir(parents=True, exist_ok=True)
    store.mark_running(paths.root, paths.manifest.name, key)  # every clip from now on is this key's

    table, draws = plan_world(world)
    clips = write_tables(paths, table, draws)
    for name in os.listdir(paths.clips_dir):
        if name.endswith(PART_SUFFIX):
            os.remove(paths.clips_dir / name)  # half-written by a killed build
    done = _clips_on_disk(paths.clips_dir)
    todo = [d for d in draws if d.clip not in done]

    workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
    sigs = signatures(world, table)
    encode_started = time.perf_counter()
    bar = tqdm(total=len(todo), desc=f"world {profile.name}", unit="clip", disable=not progress)
    if workers == 1:
        _init_worker(world, sigs, str(paths.clips_dir))
        for d in todo:
            _make_clip(d)
            bar.update()
    else:
        # fork: workers start at once and need no importable __main__ (scripts, stdin, notebooks);
        # they only run numpy and PyAV code of their own, no BLAS or torch thread pools.
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        ctx = multiprocessing.get_context(method)
        with ctx.Pool(workers, initializer=_init_worker, initargs=(world, sigs, str(paths.clips_dir))) as pool:
            for _ in pool.imap_unordered(_make_clip, todo, chunksize=16):
                bar.update()
    bar.close()
    encode_seconds = time.perf_counter() - encode_started

    missing = sorted(set(clips["clip"]) - _clips_on_disk(paths.clips_dir))
    if missing:
        raise RuntimeError(f"world build ended with {len(missing)} clips missing, e.g. {missing[0]}")
    seconds = time.perf_counter() - started
    manifest = {
        "profile": profile.name,
        "seed": world.seed,
        "world": asdict(world),
        **_summary(table, clips),
        "design": _design(),
        "versions": _versions(),
        "build": {
            "seconds": round(seconds, 2),
            "clips_written": len(todo),
            "workers": workers,
            "clips_per_second": round(len(todo) / encode_seconds, 1) if todo and encode_seconds > 0 else None,
        },
    }
    store.mark_done(paths.root, paths.manifest.name, key, manifest)
    return paths


def load_clips(paths: WorldPaths) -> pd.DataFrame:
    """The clip table (`clips.csv`) of a built world."""
    text = {c: str for c in ("clip", "ytid", "label", "category", "group", "split", "distractor", "scene", "venue", "audio_venue", "domain")}
    numbers = ("snr_db", "distractor_db", "reverb_s", "lowpass_hz", "highpass_hz", "noise_db")
    return pd.read_csv(paths.clips_table, dtype=text, keep_default_na=False, na_values={c: [""] for c in numbers})
