"""The VGGSound index: official CSVs, clips on disk, a probe report, and the paper's splits.

Both official formats are read: `test.csv` (`ytid_start.mp4,label`) and `vggsound.csv`
(`ytid,start,label,split`), neither with a header. Clip files are `{ytid}_{start:06d}.mp4`.
The embedded world writes the same formats, so the same code indexes it.
"""

from __future__ import annotations

import csv
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .config import PACKAGE_DATA, UNSEEN_OPTION_POOLS, Profile
from .index_check import KNOWN_SPLITS, IndexError_, check_index, check_labels, is_header

STAT_CSV = PACKAGE_DATA / "vggsound" / "stat.csv"
TEST_CSV = PACKAGE_DATA / "vggsound" / "test.csv"
VGGSOUNDER_CSV = PACKAGE_DATA / "vggsounder" / "vggsounder.csv"
AUDIOSET_CSV = PACKAGE_DATA / "audioset" / "class_labels_indices.csv"

INDEX_COLUMNS = ["clip", "ytid", "start", "label", "split"]
#: VGGSounder's modality tags: heard only, seen only, both.
MODALITIES = ("A", "V", "AV")


def clip_name(ytid: str, start: int) -> str:
    """VGGSound's file stem: the YouTube id and the start second, zero-padded to 6 digits."""
    return f"{ytid}_{int(start):06d}"


def _split_stem(stem: str, where: str) -> tuple[str, int]:
    # YouTube ids may contain underscores and dashes: the start is after the *last* underscore.
    ytid, sep, start = stem.rpartition("_")
    if not sep or not ytid or not start.isdigit():
        raise IndexError_(f"{where}: {stem!r} is not of the form <youtube_id>_<start>")
    return ytid, int(start)


def read_stat(path: str | Path = STAT_CSV) -> pd.DataFrame:
    """VGGSound's `stat.csv` (class, clip count, category; no header)."""
    path = Path(path)
    rows = []
    with path.open(newline="", encoding="utf-8-sig") as handle:
        for lineno, row in enumerate(csv.reader(handle), 1):
            if not row:
                continue
            if len(row) != 3 or not row[1].strip().isdigit():
                raise IndexError_(f"{path}:{lineno}: expected 'class,count,category', got {row!r}")
            rows.append((row[0], int(row[1]), row[2]))
    frame = pd.DataFrame(rows, columns=["label", "count", "category"])
    if frame.label.duplicated().any():
        dup = frame.label[frame.label.duplicated()].iloc[0]
        raise IndexError_(f"{path}: class {dup!r} listed twice")
    return frame


def read_index_csv(path: str | Path) -> pd.DataFrame:
    """Either official index format, as one table with columns `INDEX_COLUMNS` and `where`
    (the row's "file:line", for the checks of `index_check`).

    `test.csv` rows (`ytid_start.mp4,label`) get split `test`; `vggsound.csv` rows
    (`ytid,start,label,split`) keep their split. A UTF-8 byte-order mark and a header line
    are skipped; any other malformed line is an error naming the file and the line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"index file not found: {path}")
    rows = []
    with path.open(newline="", encoding="utf-8-sig") as handle:
        for lineno, row in enumerate(csv.reader(handle), 1):
            if not row or (lineno == 1 and is_header(row)):
                continue
            where = f"{path}:{lineno}"
            if len(row) == 2:
                stem = row[0].strip()
                stem = stem[:-4] if stem.endswith(".mp4") else stem
                ytid, start = _split_stem(stem, where)
                rows.append((ytid, start, row[1], "test", where))
            elif len(row) == 4:
                if not row[1].strip().isdigit():
                    raise IndexError_(f"{where}: start second {row[1]!r} is not a whole number")
                rows.append((row[0], int(row[1]), row[2], row[3].strip(), where))
            else:
                raise IndexError_(
                    f"{where}: expected 'ytid_start.mp4,label' or 'ytid,start,label,split', got {len(row)} fields"
                )
    frame = pd.DataFrame(rows, columns=["ytid", "start", "label", "split", "where"])
    frame.insert(0, "clip", [clip_name(y, s) for y, s in zip(frame.ytid, frame.start)])
    return frame


def read_vggsounder(path: str | Path = VGGSOUNDER_CSV) -> pd.DataFrame:
    """VGGSounder's per-(video, label) modality tags, counted per class.

    Returns one row per class with `n`, `n_A`, `n_V`, `n_AV` (heard only, seen only, both).
    """
    raw = pd.read_csv(path)
    missing = {"video_id", "label", "modality"} - set(raw.columns)
    if missing:
        raise IndexError_(f"{path}: missing column(s) {sorted(missing)}")
    bad = set(raw.modality) - set(MODALITIES)
    if bad:
        raise IndexError_(f"{path}: unknown modality value(s) {sorted(bad)}")
    counts = raw.pivot_table(index="label", columns="modality", values="video_id", aggfunc="count", fill_value=0)
    counts = counts.reindex(columns=list(MODALITIES), fill_value=0).add_prefix("n_")
    counts.insert(0, "n", counts.sum(axis=1))
    return counts.reset_index().rename_axis(columns=None)


def modality_rates(smoothing: float = 1.0) -> pd.DataFrame:
    """Per class P(audible) = (A + AV) / n and P(visible) = (V + AV) / n, add-`smoothing` smoothed.

    Joined to `stat.csv` so that every class has its category and VGGSound clip count.
    """
    tags = read_vggsounder()
    stat = read_stat()
    frame = stat.merge(tags, on="label", how="left").fillna({"n": 0, "n_A": 0, "n_V": 0, "n_AV": 0})
    denom = frame.n + 2 * smoothing
    frame["p_audible"] = (frame.n_A + frame.n_AV + smoothing) / denom
    frame["p_visible"] = (frame.n_V + frame.n_AV + smoothing) / denom
    return frame


def read_audioset_labels(path: str | Path = AUDIOSET_CSV) -> pd.DataFrame:
    """AudioSet's 527 classes (`index, mid, display_name`)."""
    return pd.read_csv(path)


def normalise_name(name: str) -> str:
    """Lower case, parentheses removed, punctuation other than commas dropped, spaces collapsed."""
    text = re.sub(r"\(.*?\)", " ", name.lower())
    text = text.replace("-", " ")
    text = re.sub(r"[^a-z0-9, ]", "", text)
    text = re.sub(r"\s*,\s*", ", ", text)
    return re.sub(r"\s+", " ", text).strip(" ,")


def audioset_names(labels: pd.Series) -> pd.Series:
    """The AudioSet display name of each label ('' when none matches).

    A match is case-insensitive equality, else equality after `normalise_name` (which maps
    e.g. 'wind noise' to 'Wind noise (microphone)').
    """
    names = read_audioset_labels().display_name.tolist()
    exact = {n.lower(): n for n in names}
    loose: dict[str, str] = {}
    for n in names:
        loose.setdefault(normalise_name(n), n)
    return labels.map(lambda s: exact.get(s.lower()) or loose.get(normalise_name(s), ""))


def audioset_option_pool(unseen_labels: list[str] | pd.Series) -> pd.Series:
    """Options for the unseen-class questions (Fig. 3 bottom): AudioSet's 527 display names,
    equally likely, where each unseen class stands for the AudioSet name it matches (so its
    own name is the answer and the AudioSet spelling of it is never a distractor)."""
    unseen = pd.Series(sorted(set(unseen_labels)), dtype=str)
    matched = audioset_names(unseen)
    missing = unseen[matched == ""].tolist()
    if missing:
        raise IndexError_(f"unseen classes with no AudioSet display name: {missing[:5]}")
    names = [n for n in read_audioset_labels().display_name if n not in set(matched)] + unseen.tolist()
    return pd.Series(1.0, index=pd.Index(names, name="label"))


def vggsound_share_of_audioset() -> float:
    """The share of AudioSet's display names that are VGGSound classes (31 of 527): how often a
    distractor of the paper's unseen-class questions names a class it distilled on."""
    return float((audioset_names(read_stat().label) != "").sum() / len(read_audioset_labels()))


def known_audioset_pool(unseen_labels: pd.Series, classes: pd.DataFrame) -> pd.Series:
    """AudioSet's label set as the embedded experts know it: the unseen classes stand for
    AudioSet's names outside VGGSound and share ``1 - f`` of the weight; the profile's VGGSound
    classes share ``f`` (:func:`vggsound_share_of_audioset`), so a distractor names a class of
    the distillation as often as in the paper's questions."""
    unseen = sorted(set(unseen_labels))
    vggsound = sorted(set(classes["label"]) - set(unseen))
    share = vggsound_share_of_audioset() if vggsound else 0.0
    weights = [(1.0 - share) / len(unseen)] * len(unseen) + [share / len(vggsound)] * len(vggsound)
    return pd.Series(weights, index=pd.Index(unseen + vggsound, name="label"))


def unseen_option_pool(kind: str, unseen_labels: pd.Series, classes: pd.DataFrame) -> pd.Series:
    """The unseen questions' option pool (`mcq.unseen_options`, words in `UNSEEN_OPTION_POOLS`):
    "audioset", AudioSet's names (:func:`audioset_option_pool`); "audioset-known", AudioSet's
    label set as the embedded experts know it (:func:`known_audioset_pool`); "classes", every
    class of the profile (`classes`, the stat table, and the unseen ones), equally likely."""
    if kind == "audioset":
        return audioset_option_pool(unseen_labels)
    if kind == "audioset-known":
        return known_audioset_pool(unseen_labels, classes)
    if kind != "classes":
        raise ValueError(f"unknown unseen option pool {kind!r}; pools are {sorted(UNSEEN_OPTION_POOLS)}")
    names = sorted(set(classes["label"]) | set(unseen_labels))
    return pd.Series(1.0, index=pd.Index(names, name="label"))


# --- clips on disk, the probe report, splits -------------------------------------------------


@dataclass(frozen=True)
class IndexSources:
    """Where a profile's index, class table and clips are."""

    index_csvs: tuple[Path, ...]
    stat_csv: Path
    clips_dir: Path


def index_sources(profile: Profile) -> IndexSources:
    """The files behind a profile's index: the embedded world's, or VGGSound's own."""
    if profile.data.source == "world":
        root = profile.world_dir
        return IndexSources((root / "pretrain.csv", root / "vggsound.csv", root / "unseen.csv"), root / "stat.csv", root / "clips")
    stat = Path(profile.data.stat_csv) if profile.data.stat_csv else STAT_CSV
    tables = (Path(profile.data.index_csv),) + ((Path(profile.data.unseen_csv),) if profile.data.unseen_csv else ())
    return IndexSources(tables, stat, Path(profile.data.clips_dir))


def attach_paths(index: pd.DataFrame, clips_dir: str | Path) -> pd.DataFrame:
    """Add `path` (the expected clip file) and `on_disk` columns."""
    clips_dir = Path(clips_dir)
    out = index.copy()
    out["path"] = [str(clips_dir / f"{clip}.mp4") for clip in out["clip"]]
    out["on_disk"] = [Path(p).is_file() for p in out.path]
    return out


def _probe_one(path: str) -> str:
    """'' when the clip has a decodable audio and video stream, else the reason."""
    from .media import MediaError, probe  # media pulls in decord; keep `data` importable without it

    try:
        info = probe(path)
    except MediaError as exc:
        return str(exc)
    missing = [name for name, has in (("audio", info.has_audio), ("video", info.has_video)) if not has]
    return f"{path}: no {' or '.join(missing)} stream" if missing else ""


def probe_clips(index: pd.DataFrame, report_path: str | Path | None = None, progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split an index (with `path`) into usable clips and a report of the dropped ones.

    A clip is dropped, never fatal, when its file is missing or cannot be decoded; the report
    has one row per dropped clip (clip, path, reason). Probe results are kept in
    `report_path` (Parquet, keyed by path, size and mtime) so a clip is probed once.
    """
    known: dict[tuple[str, int, int], str] = {}
    cache = Path(report_path) if report_path else None
    if cache is not None and cache.is_file():
        old = pd.read_parquet(cache)
        known = {(p, s, m): r for p, s, m, r in zip(old.path, old["size"], old.mtime_ns, old.reason)}
    rows = []
    for path in tqdm(index.path, desc="probe clips", disable=not progress, unit="clip"):
        try:
            stat = Path(path).stat()
        except FileNotFoundError:
            rows.append((path, -1, -1, f"{path}: file not found"))
            continue
        key = (path, stat.st_size, stat.st_mtime_ns)
        reason = known[key] if key in known else _probe_one(path)
        rows.append((*key, reason))
    probed = pd.DataFrame(rows, columns=["path", "size", "mtime_ns", "reason"])
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        # atomic: under a launcher (evaluate.process_state) several processes read and store it
        tmp = cache.with_name(f".{cache.name}.{uuid.uuid4().hex}.tmp")
        probed.to_parquet(tmp)
        tmp.replace(cache)
    bad = probed.reason.to_numpy() != ""
    report = index.loc[bad, ["clip", "path"]].assign(reason=probed.reason[bad].to_numpy()).reset_index(drop=True)
    return index.loc[~bad].reset_index(drop=True), report


def build_splits(index: pd.DataFrame, analysis_per_class: int, switch_val_per_class: int, seed: int) -> pd.DataFrame:
    """The paper's splits (Sec. 3.1, 4.2) from an index whose `split` is train/test/pretrain.

    - `analysis`: `analysis_per_class` clips per class drawn (seeded) out of `train`;
    - `finetune`: the rest of `train` (the analysis clips are excluded from finetuning);
    - `test`: the official test split; `pretrain` rows (embedded world only) and `unseen` rows
      (classes outside VGGSound, for the generalisation test) are kept as they are.
    The analysis clips also get `switch_split`: `val` for `switch_val_per_class` of each class
    (5 of 50 in the paper), `train` for the others; other rows get ''.
    """
    unknown = set(index.split) - set(KNOWN_SPLITS)
    if unknown:
        raise IndexError_(f"unknown split value(s) {sorted(unknown)}: expected {', '.join(KNOWN_SPLITS)}")
    out = index.copy()
    out["switch_split"] = ""
    rng = np.random.default_rng(seed)
    train = out[out.split == "train"].sort_values("clip")  # sorted: the draw must not depend on file order
    short = []
    for label, rows in train.groupby("label", sort=True):
        take = min(analysis_per_class, len(rows))
        if take < analysis_per_class:
            short.append(f"{label} ({len(rows)})")
        chosen = rng.permutation(rows.index.to_numpy())[:take]
        n_val = min(switch_val_per_class, max(take - 1, 0))
        out.loc[chosen, "split"] = "analysis"
        out.loc[chosen[:n_val], "switch_split"] = "val"
        out.loc[chosen[n_val:], "switch_split"] = "train"
    out.loc[out.split == "train", "split"] = "finetune"
    if short:
        tqdm.write(f"build_splits: fewer than {analysis_per_class} train clips in: {', '.join(short)}")
    return out


def load_index(profile: Profile, probe: bool = True, progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A profile's clip table with the paper's splits, and the report of dropped clips.

    Columns: clip, ytid, start, label, category, split, switch_split, path.
    """
    sources = index_sources(profile)
    index = pd.concat([read_index_csv(p) for p in sources.index_csvs], ignore_index=True)
    check_index(index)
    stat = read_stat(sources.stat_csv)
    outside = index.split == "unseen"  # AudioSet classes (full profile) need not be in stat.csv
    outside &= ~index.label.isin(stat.label) & (audioset_names(index.label) != "")
    check_labels(index[~outside], stat.label, sources.stat_csv)
    index = index.drop(columns="where").merge(stat[["label", "category"]], on="label", how="left").fillna({"category": "unseen"})
    index = attach_paths(index, sources.clips_dir)
    if probe:
        index, report = probe_clips(index, profile.results_dir / "probe.parquet", progress=progress)
    else:
        missing = ~index.on_disk
        report = index.loc[missing, ["clip", "path"]].assign(reason="file not found").reset_index(drop=True)
        index = index.loc[~missing].reset_index(drop=True)
    splits = build_splits(index, profile.splits.analysis_per_class, profile.splits.switch_val_per_class, profile.splits.seed)
    columns = ["clip", "ytid", "start", "label", "category", "split", "switch_split", "path"]
    return splits[columns], report
