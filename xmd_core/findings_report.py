"""The findings table: the paper's findings F1-F9, each measured from a run's result files and
judged by its rule in :mod:`xmd_core.findings`.

The inputs come from the same functions the chapters use (`analysis`, `transfer`, `switch`,
`humans.analysis`), so a verdict rests on the figures the chapters show. Every result file a
finding needs is looked for first; a missing one raises :class:`MissingResult`, and the finding
is "not measurable in this profile" with the file named. Any other error propagates.
"""

from __future__ import annotations

import re

import pandas as pd

from . import analysis, stats, switch, transfer
from .config import Profile
from .distill import DEFAULT_RECIPE, RECIPES, own_condition, run_name
from .findings import FINDINGS, RULES, Interval, Verdict
from .paper import paper_numbers
from .study_results import WRITERS, MissingResult, need, need_run  # noqa: F401 (MissingResult: the chapter catches it)
from .vocabulary import DIRECTIONS

NOT_MEASURABLE = "not measurable in this profile"
VISUAL, AUDIO = DIRECTIONS[0]  # teacher Qwen2-VL, student Qwen2-Audio
GROUND_TRUTH, NO_ANTI_FORGETTING = "ground-truth", "no-anti-forgetting"

#: The chapter that shows each finding's figures.
CHAPTERS = {"F1": "01_analysis", "F2": "01_analysis", "F3": "02_human_study", "F4": "02_human_study", "F5": "03_switch",
            "F6": "04_distillation", "F7": "04_distillation", "F8": "05_ablations", "F9": "04_distillation"}


def answers(profile: Profile, model: str, split: str, teacher: str | None = None, recipe: str = DEFAULT_RECIPE) -> pd.DataFrame:
    """`transfer.answers`, after checking that the run finished."""
    need_run(profile, model if teacher is None else run_name(teacher, model, recipe), split, own_condition(model))
    return transfer.answers(profile, model, split, teacher, recipe)


_BOUNDS = re.compile(r"^\s*\[([+-]?\d+(?:\.\d+)?), ([+-]?\d+(?:\.\d+)?)\]\s*$")


def bounds(text: str) -> tuple[float, float]:
    """The two ends of an interval as the chapters print it, "[low, high]"."""
    match = _BOUNDS.match(text)
    if match is None:
        raise ValueError(f"unexpected interval format {text!r}")
    return float(match.group(1)), float(match.group(2))


def interval(gain: dict) -> Interval:
    """A `transfer.paired_gain` record as an Interval: its gain and its printed 95% interval
    (as the chapters print it, to 0.1 points, so a verdict agrees with what they show)."""
    return Interval(float(gain["gain"]), *bounds(gain["gain 95% CI"]))


# --- each finding's inputs ----------------------------------------------------------------------------


def table1_predictions(profile: Profile) -> pd.DataFrame:
    """The original models' letter-scored predictions (as in 01_analysis), with the Figure-1
    models' analysis and test runs required."""
    for model, condition in (("qwen2-audio", "audio"), ("qwen2-vl", "silent_video"), ("qwen2.5-omni", "sounded_video")):
        for split in ("analysis", "test"):
            need_run(profile, model, split, condition)
    return analysis.collect(profile, analysis.original_runs(analysis.finished_runs(profile), "letters"))


def inputs_f1(profile: Profile, seed: int) -> dict:
    difference = transfer.paired_gain(answers(profile, AUDIO, "test"), answers(profile, VISUAL, "test"), seed)
    test = table1_predictions(profile).query("split == 'test'")
    acc = stats.accuracy_table(test, by=["model", "condition"], seed=seed)
    rows = {analysis.row_name(m, c): 100 * a for m, c, a in zip(acc["model"], acc["condition"], acc["acc"])}
    return {"difference": interval(difference), "test_accuracy": rows}


def inputs_f2(profile: Profile, seed: int) -> dict:
    from .humans.analysis import LLM_COLUMNS

    wide = analysis.classwise(table1_predictions(profile), "analysis", LLM_COLUMNS)
    counts = analysis.audio_vs_visual_count(wide)
    out = {"visual_better": counts["visual better"], "classes": counts["classes"]}
    if profile.data.source == "world":  # only the embedded world knows which classes are mostly heard
        from .world import world_paths

        groups = pd.read_csv(need(world_paths(profile).classes_table, "world")).set_index("label")["group"]
        heard = wide[wide.index.map(groups) == "heard"]
        out.update(heard_audio_better=int((heard["audio"] > heard["visual"]).sum()), heard_classes=len(heard))
    return out


def trials_for(profile: Profile) -> pd.DataFrame:
    """The participants' trials files when there are any, else the simulated panel's trials
    (both written by 02_human_study)."""
    from .humans import design, schema

    folder = design.trials_dir(profile)
    if folder.is_dir() and any(p.suffix in schema.SUFFIXES for p in folder.iterdir()):
        return schema.read_trials(folder)
    if profile.data.source != "world":
        raise MissingResult(folder, WRITERS["trials"] + ": the listening/viewing test's participants")
    return schema.read_trials(need(design.study_dir(profile) / "trials_simulated.parquet", "trials"))


def human_figures(profile: Profile, seed: int) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """Figure 1's overall accuracies and the alignment analysis, as 02_human_study computes them."""
    from .humans import analysis as human

    table1_predictions(profile)  # the Figure-1 models' runs must exist
    trials = trials_for(profile)
    llm_wide = human.llm_classwise(profile)
    chosen = human.figure1_classes(llm_wide)
    aligned = human.alignment(llm_wide, human.human_classwise(trials), chosen, seed=seed)
    return human.figure1_overall(llm_wide, trials, chosen, seed=seed), aligned, trials


def inputs_f3(profile: Profile, seed: int) -> dict:
    from .humans.analysis import LLM_COLUMNS, LLM_NAMES, figure1_classes, llm_classwise, who
    from .humans.design import CONDITION_NAMES

    overall, _, trials = human_figures(profile, seed)
    llm, humans = {}, {}
    for column, (_, condition) in LLM_COLUMNS.items():
        llm[condition] = float(overall.loc[LLM_NAMES[column], "accuracy (%)"])
        row = f"{who(trials).capitalize()}: {CONDITION_NAMES[condition]}"
        if row in overall.index:
            humans[condition] = Interval(float(overall.loc[row, "accuracy (%)"]), *bounds(overall.loc[row, "95% CI"]))
    by_cue = None
    if profile.data.source == "world":
        by_cue = _gaps_by_cue(profile, trials, list(figure1_classes(llm_classwise(profile))["label"]), seed)
    return {"llm": llm, "humans": humans, "by_cue": by_cue}


def _gaps_by_cue(profile: Profile, trials: pd.DataFrame, labels: list[str], seed: int) -> dict[str, str]:
    """Per condition, the LLM-minus-panel difference on clips whose input carries the class and
    on clips with only its venue (`humans.by_cue`), as one line."""
    from .humans.by_cue import WITH_CLASS, llms_and_panel_by_cue
    from .humans.design import CONDITION_NAMES

    table = llms_and_panel_by_cue(profile, trials, labels, seed=seed)
    condition_of = {name: condition for condition, name in CONDITION_NAMES.items()}
    out = {}
    for name, part in table.groupby("condition", sort=False):
        cells = [f"{r['LLM - panel (points)']:+.1f} points on {r['clips']} clips with "
                 f"{'the class' if r['the input carries'] == WITH_CLASS else 'only the venue'}" for _, r in part.iterrows()
                 if isinstance(r["LLM - panel (points)"], float)]
        out[condition_of[name]] = ", ".join(cells)
    return out


def inputs_f4(profile: Profile, seed: int) -> dict:
    _, aligned, _ = human_figures(profile, seed)
    counts = aligned["counts"]

    def row(name: str) -> tuple[int, int]:
        if name not in counts.index:
            return (0, 0)
        return (int(counts.loc[name, "same direction in humans"]), int(counts.loc[name, "n"]))

    short = aligned["shortfall"]
    return {"audio_row": row("audio better"), "visual_row": row("visual better"),
            "shortfall": (short["audio LLM below human ears"], short["classes"])}


def inputs_f5(profile: Profile, seed: int) -> dict:
    accuracy = {}
    for teacher, student in DIRECTIONS:
        need(switch.switch_dir(profile, teacher, student) / "metrics.json", "switch")
        accuracy[f"{teacher} -> {student}"] = float(switch.load_metrics(profile, teacher, student)["val_accuracy"])
    return {"validation_accuracy": accuracy}


def check_direction(profile: Profile, teacher: str, student: str, split: str = "test") -> None:
    """The files a direction's gain reads: the student's runs before and after, the switch's
    class labels; MissingResult names the first one absent."""
    for run in (student, run_name(teacher, student)):
        need_run(profile, run, split, own_condition(student))
    need(switch.switch_dir(profile, teacher, student) / "classes.parquet", "switch")


def direction_gain(profile: Profile, teacher: str, student: str, split: str, seed: int) -> Interval:
    return interval(transfer.paired_gain(answers(profile, student, split), answers(profile, student, split, teacher), seed))


def inputs_f6(profile: Profile, seed: int) -> dict:
    check_direction(profile, VISUAL, AUDIO)
    gain = direction_gain(profile, VISUAL, AUDIO, "test", seed)
    groups = transfer.gain_by_class_group(profile, VISUAL, AUDIO, "test", seed=seed).set_index("classes")
    part = {name: interval(groups.loc[name]) if name in groups.index else None for name in ("teacher better", "student as good or better")}
    return {"gain": gain, "teacher_better": part["teacher better"], "others": part["student as good or better"]}


def inputs_f7(profile: Profile, seed: int) -> dict:
    return {"gain": direction_gain(profile, AUDIO, VISUAL, "test", seed), "visual_to_audio": direction_gain(profile, VISUAL, AUDIO, "test", seed)}


def inputs_f8(profile: Profile, seed: int) -> dict:
    runs = {recipe: answers(profile, AUDIO, "test", VISUAL, recipe) for recipe in RECIPES}
    vs_truth = {transfer.TABLE2_ROWS[r]: interval(transfer.paired_gain(runs[GROUND_TRUTH], a, seed)) for r, a in runs.items() if r != GROUND_TRUTH}
    no_af = interval(transfer.paired_gain(runs[DEFAULT_RECIPE], runs[NO_ANTI_FORGETTING], seed))
    return {"vs_ground_truth": vs_truth, "no_anti_forgetting_vs_default": no_af}


def inputs_f9(profile: Profile, seed: int) -> dict:
    truth_run = run_name(VISUAL, AUDIO, GROUND_TRUTH)
    for run, model in ((AUDIO, AUDIO), (run_name(VISUAL, AUDIO), AUDIO), (truth_run, AUDIO), (VISUAL, VISUAL)):
        need_run(profile, run, "unseen", own_condition(model))
    overall, _ = transfer.unseen_classes(profile, VISUAL, AUDIO, seed=seed)
    truth, _ = transfer.unseen_classes(profile, VISUAL, AUDIO, recipe=GROUND_TRUTH, seed=seed)
    inputs = {"gain": interval(overall), "wrong_answers": _wrong_answer_shift(profile), "ground_truth": interval(truth)}
    from .venue_use import has_class_venues, venue_choices, venue_rule_line

    if has_class_venues(profile):
        inputs["venue_rule"] = venue_rule_line(venue_choices(profile, VISUAL, AUDIO))
    from .common_shift import common_shift_line, student_fixes, unmeasurable_reason

    if unmeasurable_reason(profile) is None:
        inputs["domain_fix"] = common_shift_line(student_fixes(profile, AUDIO))
    return inputs


def _wrong_answer_shift(profile: Profile) -> str:
    """Before and after distillation, the share of the student's wrong unseen-class answers that
    name a distilled class, beside what blind wrong answers would give, as one line."""
    from .unseen_errors import unseen_wrong_answers

    table = unseen_wrong_answers(profile, VISUAL, AUDIO)

    def share(row: str, column: str = "share (%)") -> str:
        value = table.loc[row, column]
        return f"{value:.1f}%" if isinstance(value, float) else str(value)

    return f"{share('before')} before, {share('after')} after; {share('before', 'blind wrong answer (%)')} if blindly wrong"


INPUTS = {"F1": inputs_f1, "F2": inputs_f2, "F3": inputs_f3, "F4": inputs_f4, "F5": inputs_f5,
          "F6": inputs_f6, "F7": inputs_f7, "F8": inputs_f8, "F9": inputs_f9}


# --- the paper's figures ------------------------------------------------------------------------------


def paper_figures() -> dict[str, str]:
    """Each finding's figures in the paper (from paper_numbers.csv, with the source named)."""
    p = paper_numbers().set_index(["result", "row", "column"])["value"].sort_index()
    t1 = lambda row: p[("table1", row, "test")]  # noqa: E731
    t2 = lambda row: p[("table2", row, "test")]  # noqa: E731
    f1 = paper_numbers("figure1").set_index("row")["value"].get  # each figure1 row has one column
    return {
        "F1": f"test: Qwen2-Audio {t1('Qwen2-Audio-7B-Instruct')}, Qwen2-VL {t1('Qwen2-VL-7B-Instruct')}, Qwen2.5-Omni {t1('Qwen2.5-Omni (sounded video)')} (Table 1)",
        "F2": f"Qwen2-VL better in {f1('Qwen2-VL better'):g} of {p[('splits', 'all', 'classes')]:g} classes (Sec. 3.2)",
        "F3": f"LLMs {f1('Qwen2-Audio')} / {f1('Qwen2-VL')} / {f1('Qwen2.5-Omni')} vs humans {f1('Humans ears')} / {f1('Humans eyes')} / {f1('Humans ears+eyes')} (ears / eyes / both, Fig. 1)",
        "F4": f"same sign in {f1('audio-better classes also better by human ears'):g} of 10 audio-better and "
              f"{f1('visual-better classes also better by human eyes'):g} of 10 visual-better classes; Qwen2-Audio below human ears "
              f"in {f1('Qwen2-Audio below human ears in the visual-better classes'):g} of 10 visual-better classes (Sec. 3.2)",
        "F5": f"validation {p[('switch', 'validation', 'accuracy')]}%, finetune set {p[('switch', 'finetune set', 'accuracy')]}% (Sec. 4.2)",
        "F6": f"test {t1('Qwen2-Audio-7B-Instruct')} -> {t1('Qwen2-Audio-7B-Instruct distilled from Qwen2-VL')} "
              f"({t1('Qwen2-Audio-7B-Instruct distilled from Qwen2-VL') - t1('Qwen2-Audio-7B-Instruct'):+.1f}; Table 1)",
        "F7": f"test {t1('Qwen2-VL-7B-Instruct')} -> {t1('Qwen2-VL-7B-Instruct distilled from Qwen2-Audio')} "
              f"({t1('Qwen2-VL-7B-Instruct distilled from Qwen2-Audio') - t1('Qwen2-VL-7B-Instruct'):+.1f}; Table 1)",
        "F8": "test: " + ", ".join(f"{row} {t2(row)}" for row in transfer.TABLE2_ROWS.values()) + " (Table 2)",
        "F9": f"{p[('figure3', 'unseen AudioSet classes', 'before distillation')]} -> {p[('figure3', 'unseen AudioSet classes', 'after distillation')]} "
              f"({p[('figure3', 'unseen AudioSet classes', 'after distillation')] - p[('figure3', 'unseen AudioSet classes', 'before distillation')]:+.1f}; Fig. 3)",
    }


# --- the table -----------------------------------------------------------------------------------------


def judge(profile: Profile, finding: str, seed: int = 0) -> Verdict:
    """One finding's verdict; "not measurable in this profile" when a result file is missing."""
    try:
        kwargs = INPUTS[finding](profile, seed)
    except MissingResult as missing:
        return Verdict(NOT_MEASURABLE, str(missing), {})
    return RULES[finding](**kwargs)


def findings_table(profile: Profile, seed: int = 0) -> pd.DataFrame:
    """One row per finding: what it says, the paper's figures, this run's figures (with 95%
    intervals), the verdict, why, and the chapter that shows it."""
    paper = paper_figures()
    rows = []
    for finding in RULES:
        verdict = judge(profile, finding, seed)
        measured = "; ".join(f"{k}: {v}" for k, v in verdict.figures.items()) or "not measured (see the reason)"
        rows.append({"finding": finding, "statement": FINDINGS[finding], "paper": paper[finding], "this run": measured,
                     "verdict": verdict.verdict, "reason": verdict.reason, "chapter": CHAPTERS[finding]})
    return pd.DataFrame(rows).set_index("finding")


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def findings_markdown(table: pd.DataFrame) -> str:
    """The findings table as a MyST Markdown table; the chapter column links to the chapter
    (a `{doc}` role, resolved by the book against `book/executed/<chapter>`)."""
    columns = ["finding", "statement", "paper", "this run", "verdict", "reason", "chapter"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for finding, row in table.iterrows():
        link = f"{{doc}}`{row['chapter']} <{row['chapter']}>`"
        cells = [finding, row["statement"], row["paper"], row["this run"], f"**{row['verdict']}**", row["reason"], link]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


# --- the control world ---------------------------------------------------------------------------------


def _study_command(name: str) -> str:
    return f"`xmd study --profile {name}`"


def current_control(name: str) -> tuple[Profile | None, str]:
    """The control profile `name` when its stored results are of its present configuration,
    else (None, a sentence saying why not and the command that runs it)."""
    from .config import ConfigError, load_profile, profile_path

    command = _study_command(name)
    try:
        path = profile_path(name)
    except ConfigError:
        return None, f"Control world not run: there is no profile file for `{name}` yet (then {command} runs it)."
    control = load_profile(path)
    stale = _not_current(control)
    if stale:
        return None, f"Control world not shown: {stale}. Run {command} to measure it."
    return control, ""


def control_reading(name: str, seed: int = 0) -> str:
    """Markdown: the control profile's visual -> audio gain and its F6 verdict, or a sentence
    saying it was not run (no profile file, no results, or results of another configuration)
    and the command that runs it."""
    control, why_not = current_control(name)
    if control is None:
        return why_not
    command = _study_command(name)
    verdict = judge(control, "F6", seed)  # its inputs hold the gain: computed once
    if verdict.verdict == NOT_MEASURABLE:
        return f"Control world not run: {verdict.reason}. Run {command} to measure it."
    gain = verdict.figures["gain (test, points)"]
    text = (f"In the control world (profile `{control.name}`), Qwen2-Audio distilled from Qwen2-VL gains **{gain} points** "
            f"on the test split (F6 there: *{verdict.verdict}*; {verdict.reason}).")
    if control.data.source == "world":
        from .world.mechanisms import mechanisms_sentence

        text += "\n\n" + mechanisms_sentence(control.world)
    return text


def _not_current(profile: Profile) -> str:
    """Why the profile's stored results cannot be read as its current configuration's ('' when
    they can): no complete `xmd study` recorded, or the last one ran under another configuration."""
    from .stages import STAGES_FILE, read_stages

    record = read_stages(profile)
    if record is None:
        return f"no complete study of `{profile.name}` is recorded ({profile.results_dir / STAGES_FILE})"
    if record.get("config") != profile.config_hash():
        return (f"its last study (started {record.get('started', '?')}) ran under another configuration of `{profile.name}` "
                f"({record.get('config', 'not recorded')}, now {profile.config_hash()})")
    return ""
