"""Where a distilled student's gain comes from, in the embedded world (the findings chapter).

The world records, for every clip, whether the student's own modality carries the class
(`audible` for the audio student, `visible` for the visual one) and the clip's venue. A clip
whose audio holds no sound of its class holds only its venue and background, so what a student
can learn to answer there is bounded by the venue: an observer who knows the clip's venue
exactly and every class's venue mixture (`world.context.venue_only_accuracy`) answers the most
likely option and does as well as anyone who has the venue and nothing else. (A faint sound of
another class, which such a clip may hold, can at most rule that one option out.)

- `gain_by_signal`: the paired gain by (teacher better or not) x (class carried or not), with the
  venue-only observer's accuracy on each group: the ceiling on the groups without the class.
- `gain_share_without_signal`: the share of the net gain made on clips without the class.
- `venue_room`: how many answers the clips without the class could gain at most (from the
  student's accuracy before up to the venue-only observer's), against the answers a gain of a
  given size needs: whether "most of the gain on clips without the class" can hold at all
  beside a gain of that size.
- `side_by_side`: the same split in several worlds side by side (this one and the
  control world), and `absence_sentence`: what the control world's gain on clips without the
  class says. There no venue tells the class and nothing is degraded, yet a class rarely heard
  is the likely answer when no option is heard at all: what a student gains there, it learned
  from the absence of sound alone.
"""

from __future__ import annotations

import pandas as pd

from .config import Profile
from .distill import DEFAULT_RECIPE, own_condition
from .transfer import answers, paired_gain, teacher_better_classes
from .humans.panel import world_venue_weights
from .mcq import LETTERS
from .world.context import venue_only_accuracy

CARRIED, NOT_CARRIED = "carries the class itself", "only the venue and background"


def own_draw(student: str) -> str:
    """The clip-table column that says whether the student's own input carries the class."""
    return {"audio": "audible", "silent_video": "visible"}[own_condition(student)]


def gain_by_signal(profile: Profile, teacher: str, student: str, draws: pd.DataFrame, split: str = "test", recipe: str = DEFAULT_RECIPE, seed: int = 0) -> pd.DataFrame:
    """The gain split by whether the clip's class is one the teacher wins and by whether the
    student's own modality carries the class itself on this clip (`draws`: the world's clip
    table with the student's draw column and `venue`), with the venue-only observer's accuracy on
    each group (column `venue only`, %)."""
    own = own_draw(student)
    better = teacher_better_classes(profile, teacher, student)
    before, after = answers(profile, student, split), answers(profile, student, split, teacher, recipe)
    clips = before[["clip", "label", "options", "answer"]].merge(draws[["clip", own, "venue"]], on="clip", validate="one_to_one")
    mixtures = world_venue_weights(profile)  # every class of the world: test options include the unseen ones
    rows = []
    for (wins, has_signal), part in clips.groupby([clips["label"].map(better).fillna(False).astype(bool), clips[own].astype(bool)]):
        chosen = set(part["clip"])
        gain = paired_gain(before[before["clip"].isin(chosen)], after[after["clip"].isin(chosen)], seed)
        answer_index = [LETTERS.index(letter) for letter in part["answer"]]
        ceiling = venue_only_accuracy(part["options"], answer_index, part["venue"], mixtures)
        rows.append({"classes": "teacher better" if wins else "student as good or better",
                     f"student's input ({own})": CARRIED if has_signal else NOT_CARRIED, **gain, "venue only": 100 * ceiling})
    return pd.DataFrame(rows)


def _signal_column(by_signal: pd.DataFrame) -> str:
    return next(c for c in by_signal.columns if c.startswith("student's input"))


def gain_share_without_signal(by_signal: pd.DataFrame) -> float:
    """Of the net answers gained (clips x points), the share gained on clips whose class the
    student's input does not carry (`gain_by_signal`'s rows); NaN when nothing was gained."""
    gained = by_signal["clips"] * by_signal["gain"]
    total = gained.sum()
    return float(gained[by_signal[_signal_column(by_signal)] == NOT_CARRIED].sum() / total) if total > 0 else float("nan")


def venue_room(by_signal: pd.DataFrame, required_gain: float) -> dict:
    """The most answers the clips without the class could gain (each group from its accuracy
    before up to the venue-only observer's; none where it is already above), against a gain of
    `required_gain` points on all the rows' clips: `possible` is whether those clips could hold
    more than half of such a gain."""
    without = by_signal[by_signal[_signal_column(by_signal)] == NOT_CARRIED]
    room = float(((without["venue only"] - without["before"]).clip(lower=0) * without["clips"]).sum() / 100)
    needed = required_gain * float(by_signal["clips"].sum()) / 100
    return {"clips without the class": int(without["clips"].sum()), "clips": int(by_signal["clips"].sum()),
            "room (answers)": room, "required gain (answers)": needed, "share at most": room / needed if needed > 0 else float("nan"),
            "possible": room > needed / 2}


def venue_room_sentence(room: dict, required_gain: float) -> str:
    """`venue_room`'s answer, in words (Markdown)."""
    head = (f"The {room['clips without the class']:,} test clips without their class's own signal could gain at most "
            f"**{room['room (answers)']:.0f}** answers (each group from the student's accuracy before up to the venue-only "
            f"observer's, column `venue only`); a gain of +{required_gain:.0f} points on all {room['clips']:,} clips is "
            f"{room['required gain (answers)']:.0f} answers, ")
    if room["possible"]:
        return head + "so more than half of a gain that large could lie on them."
    return head + (f"so at most {100 * room['share at most']:.0f}% of it could lie on them: in this world, a gain that large "
                   "cannot sit mostly on clips without the class's own signal, however well the student learns the venues.")


def side_by_side(by_world: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """`gain_by_signal` tables of several worlds (e.g. "this world", "control world") as one,
    a block of rows per world (column `world`, first)."""
    table = pd.concat([t.assign(world=name) for name, t in by_world.items()], ignore_index=True)
    return table[["world", *[c for c in table.columns if c != "world"]]]


def absence_sentence(in_worlds: pd.DataFrame, world: str, control: str) -> str:
    """Markdown: the gain on the teacher-better classes' clips without their class, in `world`
    and in the `control` world (`side_by_side`'s table), and what the control's says."""
    signal = _signal_column(in_worlds)
    rows = in_worlds[(in_worlds["classes"] == "teacher better") & (in_worlds[signal] == NOT_CARRIED)].set_index("world")
    if not {world, control} <= set(rows.index):
        return "No teacher-better clips without their class's own signal in one of the worlds: nothing to compare."
    ours, theirs = rows.loc[world], rows.loc[control]
    return (f"On the teacher-better classes' clips without their class's own signal, the student gains **{ours['gain']:+.1f}** "
            f"points here ({ours['clips']} clips) and **{theirs['gain']:+.1f}** in the control world ({theirs['clips']} clips), "
            f"where no venue tells the class and nothing is degraded: what it gains there, it learned from the absence of "
            f"its classes' sound alone (a class rarely heard is the likely answer when no option is heard). Only the "
            f"difference, {ours['gain'] - theirs['gain']:+.1f} points, can be put down to this world's mechanisms (on these "
            f"clips, to the venues: there is no sound of the class to degrade).")
