"""Where the student's wrong answers on the unseen classes go (xmd_core.unseen_errors)."""

import pandas as pd

from xmd_core.sense_tables import predicted_labels
from xmd_core.unseen_errors import wrong_answer_targets


def _answers(rows):
    frame = pd.DataFrame(rows, columns=["options", "answer", "predicted", "correct"])
    return frame.assign(label=[options["ABCDEFGHIJ".index(a)] for options, a in zip(frame["options"], frame["answer"])])


def test_wrong_answers_are_counted_by_whether_they_name_a_taught_class():
    options = ["owl", "dog barking", "Wind noise (microphone)"]
    frame = _answers([(options, "A", "A", True),  # right
                      (options, "A", "B", False),  # a taught class
                      (options, "A", "C", False),  # AudioSet's spelling of a taught class
                      (options, "B", "A", False),  # not taught
                      (options, "A", "", False)])  # no letter: not an answer that names anything
    picked = predicted_labels(frame)
    assert picked.iloc[:4].tolist() == ["owl", "dog barking", "Wind noise (microphone)", "owl"] and picked.isna().iloc[4]
    counts = wrong_answer_targets(frame, {"dog barking", "wind noise"})
    assert (counts["wrong answers"], counts["naming a distilled class"], counts["share (%)"]) == (3, 2, 66.7)
    # blind: answer owl -> both distractors taught (100%); answer dog barking -> 1 of 2 (50%)
    assert counts["blind wrong answer (%)"] == round(100 * (1 + 1 + 0.5) / 3, 1)


def test_no_wrong_answer_is_said_in_words():
    frame = _answers([(["owl", "dog barking"], "A", "A", True)])
    assert wrong_answer_targets(frame, {"dog barking"})["share (%)"] == "no wrong answer"
