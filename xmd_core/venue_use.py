"""Did a distilled student learn the venue as a rule, or class by class? (chapter 04, finding F9)

In the embedded world every clip happens at a venue drawn from its class's own mixture, and the
experts' language models know each class name's mixture (`expert_context`). A student that
learned the *rule* "answer the option usually found at the venue I hear" from its teacher would
apply it to every question, the unseen classes' included; a student that learned "this class's
venue" class by class would use it on the distilled classes only.

:func:`venue_choices` measures it from the stored answers: the share of questions whose chosen
option is the one most likely at the clip's venue (`venue-top answers`), before and after
distillation, on the distilled classes (test) and on the unseen ones. `venue-top is right` is
the share of questions whose answer is that option (what the rule alone would answer right).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .config import Profile
from .distill import DEFAULT_RECIPE
from .humans.panel import world_venue_weights
from .mcq import LETTERS
from .transfer import answers
from .world import load_clips, world_paths
from .world.context import likeliest_options

LETTER_INDEX = {letter: i for i, letter in enumerate(LETTERS)}
SPLITS = {"test": "distilled classes (test)", "unseen": "unseen classes"}


def has_class_venues(profile: Profile) -> bool:
    """Whether the profile's clips happen at venues drawn per class (else no option is more
    likely than another at any venue, and the measure says nothing)."""
    return profile.data.source == "world" and profile.world.context


def venue_top_share(frame: pd.DataFrame, venues: pd.Series, mixtures: pd.DataFrame, column: str) -> float:
    """% of the rows of `frame` whose letter in `column` names a venue-top option (`venues`:
    venue per clip); rows without a letter (no answer) count as not."""
    unknown = sorted(set(frame["clip"]) - set(venues.index))
    if unknown:
        raise KeyError(f"{len(unknown)} answered clip(s) are not in the world's clip table, e.g. {unknown[0]!r}: rebuild the world")
    if frame.empty:
        raise ValueError("no answers to count venue-top choices in")
    hits = [
        letter in LETTER_INDEX and LETTER_INDEX[letter] in likeliest_options(options, venues[clip], mixtures)
        for clip, options, letter in zip(frame["clip"], frame["options"], frame[column])
    ]
    return 100.0 * float(np.mean(hits))


def venue_choices(profile: Profile, teacher: str, student: str, recipe: str = DEFAULT_RECIPE) -> pd.DataFrame:
    """Per split (distilled classes, unseen classes): the share of venue-top answers before and
    after distillation, and how often the venue-top option is the answer."""
    if not has_class_venues(profile):
        raise ValueError(f"profile {profile.name!r} has no class-correlated venues (an embedded world with `world.context` on)")
    venues = load_clips(world_paths(profile)).set_index("clip")["venue"]
    mixtures = world_venue_weights(profile)
    rows = {}
    for split, title in SPLITS.items():
        before, after = answers(profile, student, split), answers(profile, student, split, teacher, recipe)
        rows[title] = {
            "clips": len(before),
            "venue-top answers before (%)": venue_top_share(before, venues, mixtures, "predicted"),
            "venue-top answers after (%)": venue_top_share(after, venues, mixtures, "predicted"),
            "venue-top is right (%)": venue_top_share(before, venues, mixtures, "answer"),
        }
    return pd.DataFrame.from_dict(rows, orient="index").round(1)


def venue_rule_line(table: pd.DataFrame) -> str:
    """The table as one line for the findings chapter: the change in venue-top answers per split."""
    return "; ".join(
        f"{title}: {row['venue-top answers before (%)']:.1f}% -> {row['venue-top answers after (%)']:.1f}%"
        for title, row in table.iterrows()
    )
