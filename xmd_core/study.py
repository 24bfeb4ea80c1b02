"""The inputs every chapter shares: the clip table with its splits, the dropped-clip report and
the question table. Built once per profile and stored under `results/<profile>/`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import data, mcq
from .config import Profile


@dataclass(frozen=True)
class StudyInputs:
    clips: pd.DataFrame  # clip, ytid, start, label, category, split, switch_split, path
    # split: pretrain (embedded experts), analysis, finetune, test, unseen (classes outside VGGSound)
    dropped: pd.DataFrame  # clip, path, reason
    questions: pd.DataFrame  # clip, label, options, answer, answer_index, prompt, seed
    classes: pd.DataFrame  # label, count, category of the option pool

    def split(self, name: str) -> pd.DataFrame:
        """The clips of one split joined to their questions."""
        rows = self.clips[self.clips.split == name]
        return rows.merge(self.questions.drop(columns=["label"]), on="clip", how="left")


def ensure_world(profile: Profile, progress: bool = True) -> None:
    """Build the embedded world when the profile runs on it (a no-op when it is up to date)."""
    if profile.data.source == "world":
        from .world import build_world  # the generator is only needed by the embedded profiles

        build_world(profile, progress=progress)


def prepare(profile: Profile, progress: bool = True) -> StudyInputs:
    """Index, probe, split and question every clip of the profile; store the tables."""
    ensure_world(profile, progress=progress)
    clips, dropped = data.load_index(profile, probe=True, progress=progress)
    classes = data.read_stat(data.index_sources(profile).stat_csv)
    counts = dict(zip(classes.label, classes["count"]))
    out: Path = profile.results_dir
    seed, n_options = profile.mcq.seed, profile.mcq.n_options
    vggsound, unseen = clips[clips.split != "unseen"], clips[clips.split == "unseen"]
    present = None
    if profile.mcq.exclude_present:  # distractors from outside each clip's labels (off: the paper's rule)
        from .clip_labels import clip_labels, present_labels

        present = present_labels(clip_labels(profile)).to_dict()
    questions = mcq.load_or_build_questions(out / "questions.parquet", vggsound, counts, seed, n_options, present)
    if len(unseen):  # classes outside VGGSound (Fig. 3 bottom): options from AudioSet's label set or the profile's classes
        pool = data.unseen_option_pool(profile.mcq.unseen_options, unseen.label, classes)
        extra = mcq.load_or_build_questions(out / "questions_unseen.parquet", unseen, pool, seed, n_options)
        questions = pd.concat([questions, extra], ignore_index=True)
    out.mkdir(parents=True, exist_ok=True)
    # atomic: under a launcher (evaluate.process_state) every process stores the same tables
    for name, write in (("clips.parquet", clips.to_parquet), ("dropped_clips.csv", lambda p: dropped.to_csv(p, index=False))):
        tmp = out / f".{name}.{uuid.uuid4().hex}.tmp"
        write(tmp)
        tmp.replace(out / name)
    return StudyInputs(clips=clips, dropped=dropped, questions=questions, classes=classes)


def split_summary(clips: pd.DataFrame) -> pd.DataFrame:
    """Clips and classes per split, and clips per class (min / median / max)."""
    per_class = clips.groupby(["split", "label"]).size()
    table = pd.DataFrame(
        {
            "clips": clips.groupby("split").size(),
            "classes": clips.groupby("split").label.nunique(),
            "per class (min)": per_class.groupby(level=0).min(),
            "per class (median)": per_class.groupby(level=0).median(),
            "per class (max)": per_class.groupby(level=0).max(),
        }
    )
    order = [s for s in ("pretrain", "analysis", "finetune", "test", "unseen") if s in table.index]
    return table.loc[order]
