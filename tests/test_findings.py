"""The findings chapter: each verdict rule on hand-made figures (both ways, at its threshold),
the table on a profile without results (every finding judged on the smoke study: test_notebooks)."""

import dataclasses

import pytest

from xmd_core import findings as fd
from xmd_core.findings import NOT_REPRODUCED, REPRODUCED, Interval

POS, NEG, ZERO = Interval(5.0, 1.0, 9.0), Interval(-5.0, -9.0, -1.0), Interval(0.5, 0.0, 1.0)
OMNI = fd.OMNI_ROW


def test_interval_signs_and_format():
    assert POS.above_zero() and not POS.below_zero()
    assert NEG.below_zero() and not NEG.above_zero()
    assert not ZERO.above_zero() and not ZERO.below_zero()  # touching 0 is not beyond it
    assert str(POS) == "+5.0 [+1.0, +9.0]"


def test_every_finding_has_a_rule_a_statement_and_a_docstring():
    assert list(fd.RULES) == [f"F{i}" for i in range(1, 10)] == list(fd.FINDINGS)
    assert all(rule.__doc__ and len(rule.__doc__) > 40 for rule in fd.RULES.values())


def test_f1_needs_interval_above_zero_and_omni_on_top():
    rows = {"Qwen2-Audio-7B-Instruct": 69.0, "Qwen2-VL-7B-Instruct": 80.8, OMNI: 89.7}
    assert fd.f1_visual_ahead(POS, rows).verdict == REPRODUCED
    no = fd.f1_visual_ahead(ZERO, rows)
    assert no.verdict == NOT_REPRODUCED and "not above 0" in no.reason
    beaten = fd.f1_visual_ahead(POS, rows | {"Qwen2-VL-7B-Instruct": 90.0})
    assert beaten.verdict == NOT_REPRODUCED and "Qwen2-VL-7B-Instruct" in beaten.reason
    assert fd.f1_visual_ahead(POS, rows | {"Qwen2-VL-7B-Instruct": 89.7}).verdict == REPRODUCED  # a tie keeps Omni on top
    assert fd.f1_visual_ahead(POS, {"Qwen2-VL-7B-Instruct": 80.8}).verdict == NOT_REPRODUCED


def test_f2_share_threshold_and_heard_classes():
    assert fd.f2_visual_ahead_in_most_classes(6, 10, 3, 5).verdict == REPRODUCED  # 0.6 exactly
    low = fd.f2_visual_ahead_in_most_classes(5, 10, 3, 5)
    assert low.verdict == NOT_REPRODUCED and "5 of 10" in low.reason
    half = fd.f2_visual_ahead_in_most_classes(8, 10, 2, 4)  # half of the heard classes is not most
    assert half.verdict == NOT_REPRODUCED and "heard" in half.reason
    real = fd.f2_visual_ahead_in_most_classes(226, 286)
    assert real.verdict == REPRODUCED and "not measurable" in real.figures["Qwen2-Audio better in heard classes"]


def test_f3_llms_above_humans_in_every_condition():
    humans = {"audio": Interval(71.9, 68.0, 75.0), "silent_video": Interval(74.1, 70.0, 78.0), "sounded_video": Interval(84.2, 80.0, 88.0)}
    llm = {"audio": 72.5, "silent_video": 83.9, "sounded_video": 94.4}
    assert fd.f3_llms_above_humans(llm, humans).verdict == REPRODUCED
    tied = fd.f3_llms_above_humans(llm | {"audio": 71.9}, humans)
    assert tied.verdict == NOT_REPRODUCED and tied.reason.startswith("audio")
    missing = fd.f3_llms_above_humans(llm, {k: v for k, v in humans.items() if k != "audio"})
    assert missing.verdict == NOT_REPRODUCED and "audio" in missing.reason


def test_f4_alignment_counts_at_the_threshold_and_scaled():
    assert fd.f4_alignment((7, 10), (7, 10), (6, 10)).verdict == REPRODUCED
    assert fd.f4_alignment((6, 10), (10, 10), (9, 10)).verdict == NOT_REPRODUCED
    short = fd.f4_alignment((10, 10), (8, 10), (5, 10))
    assert short.verdict == NOT_REPRODUCED and "below human ears" in short.reason
    assert fd.needed(fd.ALIGNMENT_MIN, 3) == 3 and fd.needed(fd.SHORTFALL_MIN, 3) == 2 and fd.needed(7, 10) == 7
    assert fd.f4_alignment((3, 3), (3, 3), (2, 3)).verdict == REPRODUCED
    assert fd.f4_alignment((2, 3), (3, 3), (2, 3)).verdict == NOT_REPRODUCED
    assert fd.f4_alignment((0, 0), (3, 3), (2, 3)).verdict == NOT_REPRODUCED  # an empty row proves nothing


def test_f5_switch_accuracy_in_both_directions():
    assert fd.f5_switch_accuracy({"a -> b": 0.85, "b -> a": 0.9}).verdict == REPRODUCED
    no = fd.f5_switch_accuracy({"a -> b": 0.888, "b -> a": 0.849})
    assert no.verdict == NOT_REPRODUCED and "b -> a" in no.reason
    assert fd.f5_switch_accuracy({}).verdict == NOT_REPRODUCED


def test_f6_large_gain_largest_where_the_teacher_wins_and_no_loss_elsewhere():
    big, better = Interval(8.0, 5.0, 11.0), Interval(15.0, 10.0, 20.0)
    assert fd.f6_visual_to_audio(big, better, Interval(-1.0, -3.0, 1.0)).verdict == REPRODUCED
    assert fd.f6_visual_to_audio(big, better, None).verdict == REPRODUCED  # no other classes: nothing to lose
    small = fd.f6_visual_to_audio(Interval(7.9, 5.0, 11.0), better, POS)
    assert small.verdict == NOT_REPRODUCED and "needed +8" in small.reason
    assert fd.f6_visual_to_audio(Interval(9.0, 0.0, 18.0), better, POS).verdict == NOT_REPRODUCED  # interval touches 0
    assert fd.f6_visual_to_audio(big, Interval(14.9, 10.0, 20.0), POS).verdict == NOT_REPRODUCED
    loss = fd.f6_visual_to_audio(big, better, NEG)
    assert loss.verdict == NOT_REPRODUCED and "other classes" in loss.reason
    assert fd.f6_visual_to_audio(big, None, POS).verdict == NOT_REPRODUCED


def test_f7_significant_and_smaller():
    assert fd.f7_audio_to_visual(Interval(3.0, 1.0, 5.0), Interval(20.0, 18.0, 22.0)).verdict == REPRODUCED
    assert fd.f7_audio_to_visual(Interval(3.0, 0.0, 5.0), Interval(20.0, 18.0, 22.0)).verdict == NOT_REPRODUCED
    same = fd.f7_audio_to_visual(Interval(20.0, 18.0, 22.0), Interval(20.0, 18.0, 22.0))
    assert same.verdict == NOT_REPRODUCED and ">=" in same.reason


def test_f8_ground_truth_upper_bound_and_anti_forgetting():
    below = {"KL": Interval(-3.0, -5.0, -1.0), "default": Interval(-0.5, -2.0, 0.0)}  # 0.0: not above
    assert fd.f8_ablations(below, ZERO).verdict == REPRODUCED
    over = fd.f8_ablations(below | {"KL": POS}, ZERO)
    assert over.verdict == NOT_REPRODUCED and over.reason.startswith("KL")
    helps = fd.f8_ablations(below, POS)
    assert helps.verdict == NOT_REPRODUCED and "anti-forgetting" in helps.reason


def test_f9_unseen_interval_above_zero():
    assert fd.f9_unseen_classes(Interval(12.3, 0.1, 20.0)).verdict == REPRODUCED
    assert fd.f9_unseen_classes(Interval(12.3, 0.0, 20.0)).verdict == NOT_REPRODUCED


def test_interval_of_a_paired_gain_record():
    from xmd_core.findings_report import bounds, interval

    assert interval({"gain": 3.25, "gain 95% CI": "[+0.5, +6.0]"}) == Interval(3.25, 0.5, 6.0)
    assert bounds("[71.0, 80.5]") == (71.0, 80.5)
    with pytest.raises(ValueError, match="unexpected interval"):
        bounds("0.5 to 6.0")


def test_paper_figures_come_from_the_data_file():
    from xmd_core.findings_report import paper_figures

    paper = paper_figures()
    assert set(paper) == set(fd.RULES)
    assert "69.0" in paper["F1"] and "80.8" in paper["F1"] and "226 of 286" in paper["F2"] and "+12.3" in paper["F9"]


def test_a_profile_without_results_is_not_measurable_naming_the_file(tmp_path):
    from xmd_core.config import load_profile
    from xmd_core.findings_report import NOT_MEASURABLE, findings_markdown, findings_table

    profile = dataclasses.replace(load_profile("smoke"), artifacts_dir=tmp_path / "artifacts", results_dir=tmp_path / "results")
    table = findings_table(profile)
    assert list(table.index) == list(fd.RULES)
    assert (table["verdict"] == NOT_MEASURABLE).all()
    assert table.loc["F1", "reason"].startswith(f"missing {tmp_path / 'results' / 'predictions'}")
    assert "run.json" in table.loc["F1", "reason"]
    assert "metrics.json" in table.loc["F5", "reason"]
    assert not table.isna().any().any()
    text = findings_markdown(table)
    assert text.count("\n") == len(table) + 1 and "{doc}`01_analysis <01_analysis>`" in text


def test_control_reading_says_not_run(tmp_path):
    from xmd_core.findings_report import control_reading

    assert "xmd study --profile no-such-profile" in control_reading("no-such-profile")
    assert "not run" in control_reading(str(tmp_path / "absent.yaml"))


def test_f3_names_where_the_llm_falls_short_without_changing_the_verdict():
    humans = {"audio": Interval(76.4, 74.0, 78.8)}
    where = {"audio": "-27.4 points on 1323 clips with the class, -13.6 points on 177 clips with only the venue"}
    plain, explained = fd.f3_llms_above_humans({"audio": 50.7}, humans), fd.f3_llms_above_humans({"audio": 50.7}, humans, where)
    assert plain.verdict == explained.verdict == NOT_REPRODUCED
    assert where["audio"] in explained.reason and explained.figures["audio: LLM - humans by clip"] == where["audio"]
    assert fd.f3_llms_above_humans({"audio": 80.0}, humans, where).verdict == REPRODUCED


def test_control_reading_refuses_results_of_another_configuration(tmp_path, smoke_yaml):
    """The control world's results are read only when its last study ran under its present
    configuration: a changed profile file would otherwise show the old world's gain."""
    import json

    from xmd_core.config import load_profile, replace
    from xmd_core.findings_report import control_reading
    from xmd_core.stages import STAGES_FILE, StageClock

    path = smoke_yaml(tmp_path)
    profile = load_profile(path)
    assert "no complete study" in control_reading(str(path))
    StageClock(replace(profile, world={"seed": 1})).write()  # a study of the profile before its world changed
    assert "another configuration" in control_reading(str(path))
    StageClock(profile).write()
    record = json.loads((profile.results_dir / STAGES_FILE).read_text())
    assert record["config"] == profile.config_hash()
    assert "another configuration" not in control_reading(str(path))  # current: judged (here: nothing to judge yet)


def test_f9_names_where_wrong_answers_go_without_changing_the_verdict():
    shift = "87.7% before, 97.4% after; 88.5% if blindly wrong"
    lost = fd.f9_unseen_classes(Interval(-18.3, -21.0, -15.7), shift)
    assert lost.verdict == NOT_REPRODUCED and shift in lost.reason and lost.figures["wrong answers naming a distilled class"] == shift
    assert fd.f9_unseen_classes(Interval(3.0, 1.0, 5.0), shift).verdict == REPRODUCED
    assert fd.f9_unseen_classes(Interval(3.0, 1.0, 5.0)).verdict == REPRODUCED


def test_f9_names_the_ground_truth_students_gain_without_changing_the_verdict():
    truth = Interval(-5.7, -7.5, -3.9)
    lost = fd.f9_unseen_classes(Interval(-2.6, -4.3, -0.8), ground_truth=truth)
    assert lost.verdict == NOT_REPRODUCED and str(truth) in lost.reason
    assert lost.figures["gain with ground-truth labels instead (points)"] == str(truth)
    won = fd.f9_unseen_classes(Interval(3.0, 1.0, 5.0), ground_truth=truth)
    assert won.verdict == REPRODUCED and str(truth) not in won.reason


def test_f9_names_the_students_venue_use_without_changing_the_verdict():
    line = "distilled classes (test): 26.3% -> 32.3%; unseen classes: 25.8% -> 24.6%"
    lost = fd.f9_unseen_classes(Interval(-2.6, -4.3, -0.8), venue_rule=line)
    assert lost.verdict == NOT_REPRODUCED and line in lost.reason
    assert lost.figures["answers naming the venue's most likely option"] == line
    assert fd.f9_unseen_classes(Interval(3.0, 1.0, 5.0), venue_rule=line).verdict == REPRODUCED


def test_f9_names_how_much_one_fix_for_every_class_undoes_without_changing_the_verdict():
    line = "wild clips 48.4% as trained (clean 69.8%); one fix for every class 49.9%, a fix per venue 51.9%, a fix per class 70.4%"
    lost = fd.f9_unseen_classes(Interval(-2.6, -4.3, -0.8), domain_fix=line)
    assert lost.verdict == NOT_REPRODUCED and line in lost.reason
    assert lost.figures["wild-domain loss undone (name scoring of the media)"] == line
    won = fd.f9_unseen_classes(Interval(3.0, 1.0, 5.0), domain_fix=line)
    assert won.verdict == REPRODUCED and line not in won.reason
