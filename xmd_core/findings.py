"""The findings chapter's verdict rules: is each of the paper's findings F1-F9 reproduced?

Each rule is a pure function of a few already computed figures (accuracies and gains in
percentage points, counts of classes, intervals), with no file reading and no randomness, so
that it can be tested on hand-made inputs. `xmd_core.findings_report` computes the inputs from a
run's result files and calls the rules. A rule returns a :class:`Verdict`: "reproduced" or "not
reproduced", the figures it looked at, and a one-line reason naming the figure that decided it.

The thresholds are module constants. Where the paper counts "k of 10" classes and a profile has
fewer Figure-1 classes per row, the count needed is scaled to the row's size (rounded up).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"

VISUAL_CLASS_SHARE = 0.6  # F2: share of classes where the visual LLM is ahead (paper 226/286 = 0.79)
HEARD_CLASS_SHARE = 0.5  # F2: "most" of the heard classes: more than half
ALIGNMENT_MIN = 7  # F4: classes of 10 whose human gap has the LLMs' sign (paper 8 and 10)
SHORTFALL_MIN = 6  # F4: visual-better classes of 10 where the audio LLM is below human ears (paper 9)
OF_CLASSES = 10  # F4: the paper's row size, to which the two counts above refer
SWITCH_ACCURACY = 0.85  # F5: validation accuracy of each switch (paper 88.8%)
LARGE_GAIN = 8.0  # F6: points gained on the test split (paper +20.4)
LARGE_GAIN_TEACHER_BETTER = 15.0  # F6: points gained on the teacher-better classes

#: Table 1's row of the audio-visual LLM, as `xmd_core.analysis.row_name` names it.
OMNI_ROW = "Qwen2.5-Omni (sounded video)"

#: The findings in words, in the paper's order.
FINDINGS = {
    "F1": "Qwen2-VL (silent video) is more accurate than Qwen2-Audio (audio) on the test split; Qwen2.5-Omni (sounded video) is the best row of Table 1",
    "F2": "Qwen2-VL is ahead in most classes; Qwen2-Audio is ahead in most of the classes that are mostly heard",
    "F3": "on the Figure-1 classes the LLMs are more accurate than humans under each condition",
    "F4": "the human ears-minus-eyes gap has the LLMs' sign in the audio-better and visual-better classes; Qwen2-Audio is below human ears in most visual-better classes",
    "F5": "the heuristic switch predicts where the teacher is better (validation accuracy, both directions)",
    "F6": "visual -> audio distillation gives a large gain, largest where the teacher is better, without a loss elsewhere",
    "F7": "audio -> visual distillation gives a significant but smaller gain",
    "F8": "Table 2: ground-truth labels are the upper bound; removing the anti-forgetting loss does not help",
    "F9": "visual -> audio distillation also helps classes it never saw (the paper: unseen AudioSet classes)",
}


class Interval(NamedTuple):
    """An estimate in points with its 95% interval."""

    value: float
    low: float
    high: float

    def above_zero(self) -> bool:
        return self.low > 0

    def below_zero(self) -> bool:
        return self.high < 0

    def __str__(self) -> str:
        return f"{self.value:+.1f} [{self.low:+.1f}, {self.high:+.1f}]"


@dataclass(frozen=True)
class Verdict:
    verdict: str  # REPRODUCED or NOT_REPRODUCED
    reason: str  # one line, naming the figure that decided
    figures: dict[str, str] = field(default_factory=dict)  # what the rule looked at, formatted


def _verdict(failures: list[str], passes: list[str], figures: dict[str, str]) -> Verdict:
    """Reproduced when nothing failed; the reason names the first failure, else every pass."""
    if failures:
        return Verdict(NOT_REPRODUCED, failures[0], figures)
    return Verdict(REPRODUCED, "; ".join(passes), figures)


def needed(share_of_ten: int, n: int) -> int:
    """Classes needed of `n` for a rule stated as `share_of_ten` of OF_CLASSES (rounded up)."""
    return math.ceil(share_of_ten * n / OF_CLASSES - 1e-9)


def f1_visual_ahead(difference: Interval, test_accuracy: Mapping[str, float]) -> Verdict:
    """Reproduced when the paired 95% interval of Qwen2-VL (silent video) minus Qwen2-Audio
    (audio) on the test split lies above 0, and no row of Table 1 (test split) is more accurate
    than Qwen2.5-Omni (sounded video)."""
    figures = {"Qwen2-VL - Qwen2-Audio (test, points)": str(difference)}
    others = {row: acc for row, acc in test_accuracy.items() if row != OMNI_ROW}
    if OMNI_ROW in test_accuracy:
        figures[f"{OMNI_ROW} (test, %)"] = f"{test_accuracy[OMNI_ROW]:.1f}"
    if others:
        top = max(others, key=others.get)
        figures["best other row (test, %)"] = f"{top} {others[top]:.1f}"
    failures, passes = [], []
    if difference.above_zero():
        passes.append(f"Qwen2-VL - Qwen2-Audio = {difference} points, interval above 0")
    else:
        failures.append(f"Qwen2-VL - Qwen2-Audio = {difference} points: interval not above 0")
    if OMNI_ROW not in test_accuracy:
        failures.append(f"no test accuracy of {OMNI_ROW}")
    else:
        best = max(test_accuracy, key=test_accuracy.get)
        if test_accuracy[best] > test_accuracy[OMNI_ROW]:
            failures.append(f"{best} ({test_accuracy[best]:.1f}%) is above {OMNI_ROW} ({test_accuracy[OMNI_ROW]:.1f}%)")
        else:
            passes.append(f"{OMNI_ROW} is the best row ({test_accuracy[OMNI_ROW]:.1f}%)")
    return _verdict(failures, passes, figures)


def f2_visual_ahead_in_most_classes(visual_better: int, classes: int, heard_audio_better: int | None = None, heard_classes: int | None = None) -> Verdict:
    """Reproduced when Qwen2-VL is more accurate than Qwen2-Audio in at least VISUAL_CLASS_SHARE
    of the classes (analysis split), and Qwen2-Audio is more accurate in more than
    HEARD_CLASS_SHARE of the mostly heard classes. The second part needs the group of mostly
    heard classes, known only in the embedded world; without it (None) it is not measurable
    and the first part decides alone."""
    share = visual_better / classes
    figures = {"Qwen2-VL better (classes)": f"{visual_better} of {classes} ({share:.0%})"}
    failures, passes = [], []
    (passes if share >= VISUAL_CLASS_SHARE else failures).append(
        f"Qwen2-VL better in {visual_better} of {classes} classes ({share:.0%}; needed {VISUAL_CLASS_SHARE:.0%})")
    if heard_audio_better is None or not heard_classes:
        figures["Qwen2-Audio better in heard classes"] = "not measurable: the group of mostly heard classes is not known"
        passes.append("the heard-classes part is not measurable")
    else:
        heard = heard_audio_better / heard_classes
        figures["Qwen2-Audio better in heard classes"] = f"{heard_audio_better} of {heard_classes} ({heard:.0%})"
        (passes if heard > HEARD_CLASS_SHARE else failures).append(
            f"Qwen2-Audio better in {heard_audio_better} of {heard_classes} heard classes (needed more than {HEARD_CLASS_SHARE:.0%})")
    return _verdict(failures, passes, figures)


def f3_llms_above_humans(llm: Mapping[str, float], humans: Mapping[str, Interval], by_cue: Mapping[str, str] | None = None) -> Verdict:
    """Reproduced when, on the Figure-1 classes, the LLM's accuracy (%) is above the panel's
    (point estimates, as the paper compares them) under every condition: Qwen2-Audio vs ears,
    Qwen2-VL vs eyes, Qwen2.5-Omni vs ears and eyes. `llm` and `humans` are keyed by condition;
    a human figure is an accuracy (%) with its participant-resampled interval. `by_cue` (embedded
    world only) says per condition where the difference lies (clips with the class itself vs
    clips with only its venue); it is shown, and named in the reason of a failure, but decides
    nothing."""
    by_cue = by_cue or {}
    figures, failures, passes = {}, [], []
    for condition, human in humans.items():
        figures[f"{condition}: LLM / humans (%)"] = f"{llm[condition]:.1f} / {human.value:.1f} [{human.low:.1f}, {human.high:.1f}]"
        line = f"{condition}: LLM {llm[condition]:.1f}% vs humans {human.value:.1f}%"
        if llm[condition] > human.value:
            passes.append(line)
        else:
            failures.append(line + (f" (LLM - humans: {by_cue[condition]})" if condition in by_cue else ""))
    figures |= {f"{condition}: LLM - humans by clip": text for condition, text in by_cue.items()}
    if set(llm) - set(humans):
        failures.append(f"no human trials under {', '.join(sorted(set(llm) - set(humans)))}")
    return _verdict(failures, passes, figures)


def f4_alignment(audio_row: tuple[int, int], visual_row: tuple[int, int], shortfall: tuple[int, int]) -> Verdict:
    """Reproduced when the humans' ears-minus-eyes gap has the LLMs' sign in at least
    ALIGNMENT_MIN of OF_CLASSES audio-better classes and as many visual-better classes, and
    Qwen2-Audio is below human ears in at least SHORTFALL_MIN of OF_CLASSES visual-better
    classes (counts scaled to the rows' size). Each argument is (count, classes in the row)."""
    parts = (("audio-better classes with the LLMs' sign", audio_row, ALIGNMENT_MIN),
             ("visual-better classes with the LLMs' sign", visual_row, ALIGNMENT_MIN),
             ("visual-better classes where Qwen2-Audio is below human ears", shortfall, SHORTFALL_MIN))
    figures, failures, passes = {}, [], []
    for name, (count, n), share in parts:
        need = needed(share, n)
        figures[name] = f"{count} of {n}"
        line = f"{name}: {count} of {n} (needed {need})"
        (passes if n > 0 and count >= need else failures).append(line)
    return _verdict(failures, passes, figures)


def f5_switch_accuracy(validation_accuracy: Mapping[str, float]) -> Verdict:
    """Reproduced when each direction's switch is at least SWITCH_ACCURACY accurate (fraction)
    on its validation clips. `validation_accuracy` maps a direction ("teacher -> student") to it."""
    figures = {f"{d} validation (%)": f"{100 * a:.1f}" for d, a in validation_accuracy.items()}
    failures, passes = [], []
    for direction, acc in validation_accuracy.items():
        line = f"switch {direction}: {100 * acc:.1f}% on validation (needed {100 * SWITCH_ACCURACY:.0f}%)"
        (passes if acc >= SWITCH_ACCURACY else failures).append(line)
    if not validation_accuracy:
        failures.append("no switch measured")
    return _verdict(failures, passes, figures)


def f6_visual_to_audio(gain: Interval, teacher_better: Interval | None, others: Interval | None) -> Verdict:
    """Reproduced when the distilled Qwen2-Audio (teacher Qwen2-VL, default recipe) gains at
    least LARGE_GAIN points on the test split with a paired interval above 0, at least
    LARGE_GAIN_TEACHER_BETTER points on the classes where the teacher is better, and loses
    nothing significant on the other classes (their interval not entirely below 0). None: the
    group has no classes (no teacher-better classes fails; no other classes cannot lose)."""
    figures = {"gain (test, points)": str(gain),
               "gain, teacher-better classes": str(teacher_better) if teacher_better else "no teacher-better classes",
               "gain, other classes": str(others) if others else "no other classes"}
    failures, passes = [], []
    ok = gain.value >= LARGE_GAIN and gain.above_zero()
    (passes if ok else failures).append(f"gain {gain} points (needed {LARGE_GAIN:+.0f}, interval above 0)")
    if teacher_better is None:
        failures.append("no teacher-better classes")
    else:
        ok = teacher_better.value >= LARGE_GAIN_TEACHER_BETTER
        (passes if ok else failures).append(f"gain on teacher-better classes {teacher_better} (needed {LARGE_GAIN_TEACHER_BETTER:+.0f})")
    if others is not None:
        (failures if others.below_zero() else passes).append(f"gain on the other classes {others} (a loss if entirely below 0)")
    return _verdict(failures, passes, figures)


def f7_audio_to_visual(gain: Interval, visual_to_audio: Interval) -> Verdict:
    """Reproduced when the distilled Qwen2-VL (teacher Qwen2-Audio) gains on the test split with
    a paired interval above 0, and gains less than the visual -> audio direction (F6)."""
    figures = {"gain (test, points)": str(gain), "visual -> audio gain (F6)": str(visual_to_audio)}
    failures, passes = [], []
    (passes if gain.above_zero() else failures).append(f"gain {gain} points: interval {'above' if gain.above_zero() else 'not above'} 0")
    smaller = gain.value < visual_to_audio.value
    (passes if smaller else failures).append(f"gain {gain.value:+.1f} {'<' if smaller else '>='} visual -> audio gain {visual_to_audio.value:+.1f}")
    return _verdict(failures, passes, figures)


def f8_ablations(vs_ground_truth: Mapping[str, Interval], no_anti_forgetting_vs_default: Interval) -> Verdict:
    """Reproduced when no recipe is significantly more accurate than ground-truth labels on the
    test split (each recipe-minus-ground-truth interval not entirely above 0), and the recipe
    without the anti-forgetting loss is not significantly better than the default (its
    difference's interval not entirely above 0)."""
    figures = {f"{r} - ground truth (points)": str(d) for r, d in vs_ground_truth.items()}
    figures["without anti-forgetting - default (points)"] = str(no_anti_forgetting_vs_default)
    failures, passes = [], []
    above = [r for r, d in vs_ground_truth.items() if d.above_zero()]
    if above:
        failures.append(f"{above[0]} is above ground truth: {vs_ground_truth[above[0]]} points")
    else:
        passes.append("no recipe significantly above ground truth")
    d = no_anti_forgetting_vs_default
    (failures if d.above_zero() else passes).append(f"without anti-forgetting - default = {d} points ({'' if d.above_zero() else 'not '}significantly above 0)")
    return _verdict(failures, passes, figures)


def f9_unseen_classes(gain: Interval, wrong_answers: str | None = None, ground_truth: Interval | None = None,
                      venue_rule: str | None = None, domain_fix: str | None = None) -> Verdict:
    """Reproduced when the distilled Qwen2-Audio (teacher Qwen2-VL) gains on the unseen
    classes with a paired interval above 0. Shown, and named in the reason of a failure, but
    deciding nothing: `wrong_answers`, where the student's wrong answers go before and after
    (`unseen_errors`); `ground_truth`, the gain of the student distilled on ground-truth labels
    instead (a loss there too is not the teacher's doing); `venue_rule`, how often the student
    answers the option most likely at the clip's venue before and after, on the distilled and
    the unseen classes (`venue_use`: learned as a rule, it would rise on both); `domain_fix`, how
    much of the audio expert's wild-domain loss one fix for every class, or one per venue, could
    give back, beside a fix per class (`common_shift`: only the first two could carry over to
    unseen classes)."""
    ok = gain.above_zero()
    figures = {"gain on unseen classes (points)": str(gain)}
    notes = []
    if wrong_answers:
        figures["wrong answers naming a distilled class"] = wrong_answers
        notes.append(f"wrong answers naming a distilled class: {wrong_answers}")
    if ground_truth is not None:
        figures["gain with ground-truth labels instead (points)"] = str(ground_truth)
        notes.append(f"distilled on ground-truth labels instead: {ground_truth} points")
    if venue_rule:
        figures["answers naming the venue's most likely option"] = venue_rule
        notes.append(f"answers naming the venue's most likely option: {venue_rule}")
    if domain_fix:
        figures["wild-domain loss undone (name scoring of the media)"] = domain_fix
        notes.append(f"wild-domain loss undone (name scoring of the media): {domain_fix}")
    reason = f"gain on unseen classes {gain} points: interval {'above' if ok else 'not above'} 0"
    if notes and not ok:
        reason += f" ({'; '.join(notes)})"
    return Verdict(REPRODUCED if ok else NOT_REPRODUCED, reason, figures)


RULES = {
    "F1": f1_visual_ahead,
    "F2": f2_visual_ahead_in_most_classes,
    "F3": f3_llms_above_humans,
    "F4": f4_alignment,
    "F5": f5_switch_accuracy,
    "F6": f6_visual_to_audio,
    "F7": f7_audio_to_visual,
    "F8": f8_ablations,
    "F9": f9_unseen_classes,
}
