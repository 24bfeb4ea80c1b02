"""Every label of every clip, each tagged with the sense it can be perceived by (VGGSounder's form).

VGGSounder (Zverev et al., ICCV 2025) re-annotated VGGSound's test set: a clip has all the
classes present in it, each tagged heard only (`A`), seen only (`V`) or both (`AV`), and three
per-clip flags (background music, static image, voice-over). One table interface, `LABEL_COLUMNS`,
serves both profiles:

- the full profile reads the labels the `vggsounder` package ships (`PACKAGE_FILE`, its version
  1.0 with the background-music clips: 15,069 of VGGSound's 15,446 test clips);
- the embedded world writes the same tags from each clip's draw: its own class is `AV`, `A`, `V`
  (audible, visible or both) or `none` (neither: only its venue gives it away), and the faint
  second sound of an inaudible clip (`distractor`) is a second label, heard only. The world
  draws none of the flagged kinds of clip, so every flag is False there (`flags_modelled`).

(The VGGSounder CSV shipped in `data_files/` is the same release's subset without background
music, 12,014 clips; the world's class rates are drawn from it: `data.modality_rates`.)

A question's *answer tag* is the tag of the label it asks for: `A`, `V`, `AV`, `none` (neither
sense: VGGSounder annotated the clip without this label, or the world drew it so) or
`unannotated` (VGGSounder has no labels for the clip).
"""

from __future__ import annotations

import importlib.metadata
import importlib.resources

import pandas as pd

from .config import Profile
from .data import MODALITIES

LABEL_COLUMNS = ["clip", "label", "modality", "background_music", "static_image", "voice_over"]
FLAGS = ("background_music", "static_image", "voice_over")
#: A label's tag: a modality, or `none`: the clip's class, perceivable by neither sense (the
#: world's draws only; VGGSounder lists only what its annotators heard or saw).
LABEL_TAGS = (*MODALITIES, "none")
#: The answer tags of `answer_tags`, in table order.
ANSWER_TAGS = ("A", "V", "AV", "none", "unannotated")
#: The package's label file: release 1.0, every annotated test clip (background music included).
PACKAGE_FILE = "vggsounder+background-music.csv"


def package_version() -> str:
    """The installed `vggsounder` release (its `__version__` attribute lags: read the metadata)."""
    return importlib.metadata.version("vggsounder")


def vggsounder_labels() -> pd.DataFrame:
    """VGGSounder's labels from the `vggsounder` package, in `LABEL_COLUMNS` (offline: the CSV
    ships inside the package)."""
    path = importlib.resources.files("vggsounder") / "data" / PACKAGE_FILE
    with importlib.resources.as_file(path) as local:
        raw = pd.read_csv(local, dtype={"video_id": str, "label": str, "modality": str})
    return check_labels(raw.rename(columns={"video_id": "clip"}), f"vggsounder {package_version()} {PACKAGE_FILE}")


def world_labels(world_clips: pd.DataFrame) -> pd.DataFrame:
    """The embedded world's labels from each clip's draw (`world.load_clips`)."""
    tag = {(True, True): "AV", (True, False): "A", (False, True): "V", (False, False): "none"}
    own = [(clip, label, tag[(bool(a), bool(v))]) for clip, label, a, v in
           zip(world_clips["clip"], world_clips["label"], world_clips["audible"], world_clips["visible"])]
    faint = [(clip, other, "A") for clip, other in zip(world_clips["clip"], world_clips["distractor"]) if other]
    table = pd.DataFrame(own + faint, columns=["clip", "label", "modality"])
    return check_labels(table.assign(**{flag: False for flag in FLAGS}), "the world's draws")


def clip_labels(profile: Profile) -> pd.DataFrame:
    """The profile's labels: the world's draws, or VGGSounder's (full profile)."""
    if profile.data.source != "world":
        return vggsounder_labels()
    from .world.build import load_clips, world_paths

    return world_labels(load_clips(world_paths(profile)))


def flags_modelled(labels: pd.DataFrame) -> bool:
    """Whether any clip carries a flag (the embedded world draws no such clip)."""
    return bool(labels[list(FLAGS)].any().any())


def check_labels(table: pd.DataFrame, where: str) -> pd.DataFrame:
    """`table` in `LABEL_COLUMNS`, or ValueError naming what is wrong in `where`."""
    missing = [c for c in LABEL_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{where}: missing column(s) {missing}")
    bad = sorted(set(table["modality"]) - set(LABEL_TAGS))
    if bad:
        raise ValueError(f"{where}: unknown modality tag(s) {bad}; tags are {LABEL_TAGS}")
    twice = table.duplicated(["clip", "label"])
    if twice.any():
        row = table[twice].iloc[0]
        raise ValueError(f"{where}: clip {row['clip']} has label {row['label']!r} twice")
    out = table[LABEL_COLUMNS].copy()
    for flag in FLAGS:
        out[flag] = out[flag].astype(bool)
    return out.reset_index(drop=True)


def answer_tags(questions: pd.DataFrame, labels: pd.DataFrame) -> pd.Series:
    """The tag of the label each question asks for (`ANSWER_TAGS`), indexed like `questions`."""
    tagged = questions[["clip", "label"]].merge(labels[["clip", "label", "modality"]], on=["clip", "label"], how="left")
    annotated = questions["clip"].isin(set(labels["clip"])).to_numpy()
    tags = tagged["modality"].where(tagged["modality"].notna(), pd.Series(annotated).map({True: "none", False: "unannotated"}))
    return pd.Series(tags.to_numpy(), index=questions.index, name="answer_tag")


def present_labels(labels: pd.DataFrame) -> pd.Series:
    """Per clip, the set of its labels that some sense perceives (tags other than `none`)."""
    return labels[labels["modality"] != "none"].groupby("clip")["label"].agg(set)


def present_distractors(questions: pd.DataFrame, labels: pd.DataFrame) -> pd.Series:
    """Per question, the options other than its answer that are labels of the same clip."""
    present = present_labels(labels)
    found = [[o for o in options if o != label and o in present.get(clip, ())]
             for clip, label, options in zip(questions["clip"], questions["label"], questions["options"])]
    return pd.Series(found, index=questions.index, name="present_distractors")


def clip_flags(labels: pd.DataFrame) -> pd.DataFrame:
    """One row per annotated clip with its flags."""
    return labels.groupby("clip")[list(FLAGS)].first()
