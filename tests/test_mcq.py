import numpy as np
import pandas as pd
import pytest
from scipy.stats import chisquare, spearmanr

from xmd_core import data, mcq


@pytest.fixture(scope="module")
def counts():
    stat = data.read_stat()
    return dict(zip(stat.label, stat["count"]))


def test_question_shape_and_prompt(counts):
    q = mcq.build_question("playing piano", counts, np.random.default_rng(0))
    assert len(q.options) == 10 and len(set(q.options)) == 10
    assert q.options.count("playing piano") == 1 and q.options[q.answer_index] == "playing piano"
    lines = q.prompt.splitlines()
    assert lines[0] == "Classify the sounding object into one of the categories below:"
    assert lines[1].startswith("A. ") and lines[10].startswith("J. ")
    assert lines[-1] == "Respond only with a single letter from A to J."


def test_errors_are_clear(counts):
    with pytest.raises(ValueError, match="not among"):
        mcq.build_question("no such class", counts, np.random.default_rng(0))
    with pytest.raises(ValueError, match="distractors"):
        mcq.build_question("a", {"a": 1, "b": 2}, np.random.default_rng(0))


def test_answer_letter_is_uniform_and_distractors_track_frequency(counts):
    rng = np.random.default_rng(0)
    labels = list(counts)
    questions = [mcq.build_question(labels[i % len(labels)], counts, rng) for i in range(6000)]
    table = pd.DataFrame({"label": [q.label for q in questions], "options": [list(q.options) for q in questions],
                          "answer": [q.answer for q in questions]})
    letters = mcq.answer_letter_counts(table)
    assert letters["count"].sum() == 6000
    assert chisquare(letters["count"]).pvalue > 0.001
    rates = mcq.distractor_rates(table, counts)
    rho = spearmanr(rates.frequency_share, rates.distractor_share).statistic
    assert rho > 0.5
    # the most frequent classes are drawn clearly more often than the rarest ones
    top = rates.nlargest(30, "frequency_share").distractor_share.mean()
    bottom = rates.nsmallest(30, "frequency_share").distractor_share.mean()
    assert top > 2.5 * bottom


def test_question_table_is_per_clip_seeded_and_stored(tmp_path, counts):
    clips = pd.DataFrame({"clip": [f"c{i}_000001" for i in range(20)], "label": ["dog barking"] * 20})
    first = mcq.load_or_build_questions(tmp_path / "q.parquet", clips, counts, seed=0)
    again = mcq.load_or_build_questions(tmp_path / "q.parquet", clips, counts, seed=0)
    pd.testing.assert_frame_equal(first, again)
    # a clip's question does not depend on which other clips are in the table
    subset = mcq.build_questions(clips.iloc[5:8], counts, seed=0)
    assert subset.options.tolist() == first.options.iloc[5:8].tolist()
    other = mcq.load_or_build_questions(tmp_path / "q.parquet", clips, counts, seed=1)
    assert other.options.tolist() != first.options.tolist() and (other.seed == 1).all()


def test_a_stored_table_of_another_option_pool_is_rebuilt(tmp_path, counts):
    """Changing where the distractors come from (e.g. `mcq.unseen_options`) must not reuse the
    stored questions: their options would be another pool's."""
    clips = pd.DataFrame({"clip": [f"c{i}_000001" for i in range(20)], "label": ["dog barking"] * 20})
    first = mcq.load_or_build_questions(tmp_path / "q.parquet", clips, counts, seed=0)
    small = pd.Series(1.0, index=["dog barking", *[f"other {k}" for k in range(9)]])
    rebuilt = mcq.load_or_build_questions(tmp_path / "q.parquet", clips, small, seed=0)
    assert set().union(*rebuilt.options) == set(small.index) != set().union(*first.options)
    assert (rebuilt["pool"] == mcq.pool_digest(small)).all() and (first["pool"] == mcq.pool_digest(counts)).all()
    stored = pd.read_parquet(tmp_path / "q.parquet").drop(columns="pool")  # a table stored before the pool was recorded
    stored.to_parquet(tmp_path / "q.parquet")
    assert (mcq.load_or_build_questions(tmp_path / "q.parquet", clips, small, seed=0)["pool"] == mcq.pool_digest(small)).all()
