"""Modality-aware evaluation on hand-made tables (tag join, multi-label scoring, confusion rate,
distractors from outside the clip's labels), and on the real VGGSound test set with the
`vggsounder` package's labels (no clips needed)."""

import numpy as np
import pandas as pd
import pytest

from xmd_core import clip_labels, data, mcq, sense_tables

FALSE_FLAGS = {"background_music": False, "static_image": False, "voice_over": False}


def _labels(rows):
    return clip_labels.check_labels(pd.DataFrame(rows, columns=["clip", "label", "modality"]).assign(**FALSE_FLAGS), "test labels")


LABELS = _labels([("c1", "dog", "A"), ("c1", "cat", "V"), ("c2", "car", "AV"), ("c3", "bird", "AV"), ("c4", "rain", "none")])


def _answers(rows):
    """(clip, label, options, predicted) -> a predictions table."""
    frame = pd.DataFrame(rows, columns=["clip", "label", "options", "predicted"])
    frame["answer"] = [mcq.LETTERS[o.index(lab)] for o, lab in zip(frame["options"], frame["label"])]
    return frame.assign(correct=frame["predicted"] == frame["answer"])


def test_each_question_gets_the_tag_of_the_label_it_asks_for():
    questions = pd.DataFrame({"clip": ["c1", "c1", "c2", "c3", "c4", "c9"], "label": ["dog", "cat", "car", "owl", "rain", "dog"]})
    tags = clip_labels.answer_tags(questions, LABELS)
    assert tags.tolist() == ["A", "V", "AV", "none", "none", "unannotated"]
    assert sense_tables.tag_counts(questions, LABELS)["questions"].tolist() == [1, 1, 1, 2, 1]


def test_a_present_distractor_is_right_only_when_scoring_every_label():
    answers = _answers([("c1", "dog", ["dog", "cat", "car"], "B"),   # picked cat: present in c1 (seen)
                        ("c2", "car", ["dog", "car", "cat"], "B"),   # right
                        ("c3", "bird", ["bird", "rain", "car"], "C"),  # car is not c3's: wrong both ways
                        ("c4", "rain", ["rain", "dog", "car"], "A")])  # right
    found = clip_labels.present_distractors(answers, LABELS)
    assert found.tolist() == [["cat"], [], [], []]
    table = sense_tables.multilabel_scores({"m": answers}, LABELS)
    assert table.loc["m", "all: paper"].startswith("50.0") and table.loc["m", "all: any label"].startswith("75.0")
    assert table.loc["m", "present distractor: paper"].startswith("0.0 [") and table.loc["m", "present distractor: any label"].startswith("100.0 [")
    assert table.loc["m", "answers changed"] == 1
    listed = sense_tables.present_distractor_questions(answers, LABELS)
    assert listed.to_dict("records") == [{"clip": "c1", "label": "dog", "answer tag": "A", "present distractor (tag)": "cat (V)"}]


def test_the_confusion_rate_counts_clips_right_from_one_sense_and_wrong_from_both():
    clips = [f"c{i}" for i in range(6)]
    audio = pd.DataFrame({"clip": clips, "correct": [True, True, False, False, True, False]})
    silent = pd.DataFrame({"clip": clips, "correct": [False, True, True, False, False, False]})
    sounded = pd.DataFrame({"clip": clips, "correct": [False, True, True, True, False, False]})
    result = sense_tables.confusion_rate(audio, silent, sounded)
    assert result["right from one sense alone"] == 4 and result["of them wrong from both"] == 2
    assert result["confusion rate (%)"].startswith("50.0 [") and result["wrong from each alone, right from both"] == 1
    with pytest.raises(ValueError, match="different clips"):
        sense_tables.confusion_rate(audio, silent.head(5), sounded)


def test_accuracy_by_tag_splits_each_row_by_the_asked_labels_tag():
    answers = _answers([("c1", "dog", ["dog", "car"], "A"), ("c1", "cat", ["car", "cat"], "A"), ("c2", "car", ["car", "dog"], "A")])
    table = sense_tables.accuracy_by_tag({"audio model": answers}, LABELS)
    assert list(table.columns) == ["heard only (A)", "seen only (V)", "heard and seen (AV)"]
    assert table.loc["audio model"].str.split(" ").str[0].tolist() == ["100.0", "0.0", "100.0"]


def test_the_worlds_labels_come_from_each_clips_draw():
    world = pd.DataFrame({"clip": ["a", "b", "c", "d"], "label": ["dog"] * 4, "audible": [True, True, False, False],
                          "visible": [True, False, True, False], "distractor": ["", "", "", "cat"]})
    labels = clip_labels.world_labels(world)
    assert list(zip(labels["clip"], labels["label"], labels["modality"])) == [
        ("a", "dog", "AV"), ("b", "dog", "A"), ("c", "dog", "V"), ("d", "dog", "none"), ("d", "cat", "A")]
    assert not clip_labels.flags_modelled(labels)
    assert sense_tables.flag_accuracy({"m": _answers([("d", "dog", ["dog", "cat"], "A")])}, labels)["flags"].str.startswith("not measurable").all()


def test_bad_labels_are_refused_by_name():
    with pytest.raises(ValueError, match="unknown modality tag.*'AVX'"):
        _labels([("c1", "dog", "AVX")])
    with pytest.raises(ValueError, match="clip c1 has label 'dog' twice"):
        _labels([("c1", "dog", "A"), ("c1", "dog", "V")])


def test_exclude_present_draws_distractors_from_outside_the_clips_labels():
    counts = {name: 10 for name in "abcdefghijkl"}
    clips = pd.DataFrame({"clip": [f"k{i}" for i in range(40)], "label": ["a"] * 40})
    paper = mcq.build_questions(clips, counts, seed=0)
    present = {clip: {"a", "b", "c"} for clip in clips["clip"]}
    excluding = mcq.build_questions(clips, counts, seed=0, present=present)
    assert paper["options"].map(lambda o: "b" in o or "c" in o).any()  # the paper's rule offers them
    assert not excluding["options"].map(lambda o: "b" in o or "c" in o).any()
    assert (excluding["exclude_present"]).all() and not paper["exclude_present"].any()
    without = mcq.build_questions(clips, counts, seed=0, present={})
    assert without["options"].tolist() == paper["options"].tolist()  # nothing to exclude: the same draws


def test_the_real_test_set_with_vggsounders_labels():
    """The full profile's tags: how many of VGGSound's test clips VGGSounder labels, and how many
    of their questions (the paper's protocol, the project's question seed) offer a present distractor."""
    test = data.read_index_csv(data.TEST_CSV)  # the project's reader of VGGSound's official test.csv
    labels = clip_labels.vggsounder_labels()
    assert clip_labels.package_version() == "1.0"
    assert len(test) == 15446 and labels["clip"].nunique() == 15069
    annotated = test["clip"].isin(set(labels["clip"]))
    assert annotated.sum() == 15069  # every VGGSounder clip is a test clip
    counts = data.read_stat().set_index("label")["count"]
    questions = mcq.build_questions(test, counts, seed=0)
    found = clip_labels.present_distractors(questions, labels)
    with_present = int((found.map(len) > 0).sum())
    # recounted by hand: an option other than the answer among the clip's VGGSounder labels
    by_clip = labels.groupby("clip")["label"].agg(set)
    recount = sum(any(o != lab and o in by_clip.get(c, ()) for o in opts) for c, lab, opts in zip(questions["clip"], questions["label"], questions["options"]))
    assert with_present == recount and 0 < with_present < len(questions)
    tags = clip_labels.answer_tags(questions, labels).value_counts()
    assert tags["unannotated"] == 15446 - 15069 and set(tags.index) <= set(clip_labels.ANSWER_TAGS)
    print(f"\n{annotated.sum()} of {len(test)} test clips labelled; {with_present} questions with a present distractor; tags {tags.to_dict()}")
    assert np.isclose(tags.sum(), len(test))


def test_a_stored_question_table_is_rebuilt_when_the_distractor_rule_changes(tmp_path):
    counts = {name: 10 for name in "abcdefghijkl"}
    clips = pd.DataFrame({"clip": [f"k{i}" for i in range(20)], "label": ["a"] * 20})
    path = tmp_path / "questions.parquet"
    paper = mcq.load_or_build_questions(path, clips, counts, seed=0)
    present = {clip: {"b"} for clip in clips["clip"]}
    excluding = mcq.load_or_build_questions(path, clips, counts, seed=0, present=present)
    assert excluding["exclude_present"].all() and not excluding["options"].map(lambda o: "b" in o).any()
    again = mcq.load_or_build_questions(path, clips, counts, seed=0)
    assert again["options"].tolist() == paper["options"].tolist() and not again["exclude_present"].any()
    older = again.drop(columns="exclude_present")  # a table stored before the rule existed: the paper's
    older.to_parquet(path)
    assert mcq.load_or_build_questions(path, clips, counts, seed=0)["options"].tolist() == paper["options"].tolist()
