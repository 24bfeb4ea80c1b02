"""What the exploration chapter shows, read from the study's results (no model runs here).

A fixed handful of clips per class: the analysis clips the switch held out for validation
(`switch_split == "val"`), so the switch's decision on them is one it did not train on. For each
clip, every answerer's ten letter probabilities (the softmax of its stored letter logits): each
model under each of its conditions and the distilled students. And the class-wise accuracies of
every answerer on the test split, for the scatter of any two.

The media are the signal the models got: the audio decoded at the profile's sample rate and the
frames at its fps and pixel budget (`xmd_core.media`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .config import Profile
from .distill import own_condition, run_name
from .evaluate import load_predictions
from .mcq import LETTERS
from .study import StudyInputs
from .study_results import need_run
from .vocabulary import DIRECTIONS, run_for

#: Clips shown per class (held-out switch-validation clips of the analysis split).
CLIPS_PER_CLASS = 2


@dataclass(frozen=True)
class Answerer:
    """One row of letter bars: a model's stored answers under one condition."""

    title: str
    run: str
    condition: str


def answerers(profile: Profile) -> list[Answerer]:
    """The profile's runnable models under each of their conditions, then the distilled students."""
    from .models.registry import get_spec, unavailable_reason

    rows = []
    for name in profile.models.evaluate:
        spec = get_spec(name)
        if not unavailable_reason(spec, profile):
            rows += [Answerer(f"{spec.display} ({condition.replace('_', ' ')})", run_for(name), condition) for condition in spec.conditions]
    for teacher, student in DIRECTIONS:
        title = f"{get_spec(student).display} distilled from {get_spec(teacher).display}"
        rows.append(Answerer(title, run_name(teacher, student), own_condition(student)))
    return rows


def chosen_clips(inputs: StudyInputs, per_class: int = CLIPS_PER_CLASS) -> pd.DataFrame:
    """The first `per_class` switch-validation clips of each class (by clip name), with their
    questions; classes in label order."""
    rows = inputs.split("analysis")
    held_out = rows[rows["switch_split"] == "val"].sort_values(["label", "clip"])
    if held_out.empty:
        raise ValueError("no analysis clip is marked switch_split == 'val': nothing to explore")
    return held_out.groupby("label", sort=True).head(per_class).reset_index(drop=True)


def letter_probabilities(logits: list | np.ndarray) -> np.ndarray:
    """Softmax over the ten letter logits of one answer."""
    z = np.asarray(logits, dtype=float)
    z = np.exp(z - z.max())
    return z / z.sum()


def answers_of(profile: Profile, answerer: Answerer, split: str) -> pd.DataFrame:
    """An answerer's finished run on a split (a missing one is `MissingResult`)."""
    need_run(profile, answerer.run, split, answerer.condition)
    return load_predictions(profile, answerer.run, split, answerer.condition)


def clip_answers(profile: Profile, clips: pd.DataFrame, split: str = "analysis") -> pd.DataFrame:
    """One row per (clip, answerer): `probabilities` (10), `predicted`, `correct`, `error`."""
    tables = []
    for answerer in answerers(profile):
        stored = answers_of(profile, answerer, split)
        stored = stored[stored["clip"].isin(clips["clip"])]
        probs = [letter_probabilities(l) if l is not None and len(l) == len(LETTERS) else None for l in stored["letter_logits"]]
        tables.append(stored[["clip", "predicted", "correct", "error"]].assign(answerer=answerer.title, probabilities=probs))
    return pd.concat(tables, ignore_index=True)


def switch_decisions(profile: Profile, clips: pd.DataFrame) -> pd.DataFrame:
    """The switch's decision on each clip, per direction: clip, direction, p_teacher_better, open."""
    from .models.registry import get_spec
    from .study_results import require_switches
    from .switch import load_decisions

    require_switches(profile)
    tables = []
    for teacher, student in DIRECTIONS:
        decided = load_decisions(profile, teacher, student)
        decided = decided[decided["clip"].isin(clips["clip"])]
        direction = f"{get_spec(teacher).display} -> {get_spec(student).display}"
        tables.append(decided[["clip", "p_teacher_better", "open"]].assign(direction=direction))
    return pd.concat(tables, ignore_index=True)


def classwise_accuracy(profile: Profile, split: str = "test") -> pd.DataFrame:
    """Accuracy (%) per class (rows) of every answerer (columns) on a split."""
    columns = {}
    for answerer in answerers(profile):
        stored = answers_of(profile, answerer, split)
        columns[answerer.title] = 100 * stored.groupby("label")["correct"].mean()
    return pd.DataFrame(columns).sort_index()


# --- media as the models got them -------------------------------------------------------------


@dataclass(frozen=True)
class ClipMedia:
    audio_ogg: bytes  # Ogg Vorbis of the decoded audio (small enough to embed in a page)
    frames_jpeg: list[bytes]  # the frames, one JPEG each
    sample_rate: int
    frame_size: tuple[int, int]  # (width, height) of the frames


def clip_media(path: str, profile: Profile) -> ClipMedia:
    """The clip's audio and frames decoded exactly as the evaluation decodes them."""
    import soundfile
    from PIL import Image

    from .media import load_audio, load_frames

    audio = load_audio(path, profile.media.sample_rate)
    buffer = io.BytesIO()
    soundfile.write(buffer, audio, profile.media.sample_rate, format="OGG", subtype="VORBIS")
    frames = load_frames(path, profile.media.fps, profile.media.max_pixels)
    jpegs = []
    for frame in frames:
        out = io.BytesIO()
        Image.fromarray(frame).save(out, format="JPEG", quality=85)
        jpegs.append(out.getvalue())
    return ClipMedia(buffer.getvalue(), jpegs, profile.media.sample_rate, (int(frames.shape[2]), int(frames.shape[1])))


# --- the embedded world's draws ---------------------------------------------------------------


def class_groups(profile: Profile) -> pd.Series | None:
    """Each class's group in the embedded world (heard, seen, both, unseen); None for VGGSound."""
    if profile.data.source != "world":
        return None
    from .study_results import need
    from .world.build import world_paths

    return pd.read_csv(need(world_paths(profile).classes_table, "world", profile)).set_index("label")["group"]


def draw_descriptions(profile: Profile, clips: pd.DataFrame) -> dict[str, str]:
    """clip -> what the world drew for it (own sound and sight, venue, faint second sound); empty
    for VGGSound, whose clips have no draw."""
    if profile.data.source != "world":
        return {}
    from .world.build import load_clips, world_paths

    draws = load_clips(world_paths(profile)).set_index("clip")
    out = {}
    for clip in clips["clip"]:
        d = draws.loc[clip]
        parts = [f"own sound {'heard' if d.audible else 'absent'}", f"own sight {'shown' if d.visible else 'absent'}", f"venue {d.venue}"]
        if d.distractor:
            parts.append(f"faint sound of {d.distractor}")
        out[clip] = ", ".join(parts)
    return out
