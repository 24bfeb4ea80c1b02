"""How much of a domain shift one fix for every class undoes (xmd_core.common_shift)."""

import dataclasses

import pandas as pd
import pytest
import torch

from xmd_core import common_shift as cs
from xmd_core.config import load_profile

CLASSES = [f"c{i}" for i in range(6)]


VENUES = 3


def _clips(shift, per_class: int = 30, seed: int = 0):
    """Clean and wild media summaries near their class's name embedding, each clip at one of
    `VENUES` venues; the wild ones moved by `shift(class index, venue index, names)`."""
    generator = torch.Generator().manual_seed(seed)
    names = torch.randn(len(CLASSES), 24, generator=generator)
    frame = pd.DataFrame([(c, d, f"v{k % VENUES}") for d in ("clean", "wild") for c in CLASSES for k in range(per_class)],
                         columns=["label", "domain", "venue"])
    index = torch.tensor([CLASSES.index(c) for c in frame["label"]])
    venue = torch.tensor([int(v[1:]) for v in frame["venue"]])
    summaries = names[index] + 0.7 * torch.randn(len(frame), 24, generator=generator)
    wild = torch.tensor((frame["domain"] == "wild").to_numpy())
    summaries[wild] += torch.stack([shift(int(i), int(v), names) for i, v in zip(index[wild], venue[wild])])
    return summaries, frame, names


def _accuracy(shift) -> dict[str, float]:
    summaries, frame, names = _clips(shift)
    estimate = frame.index.to_numpy() // VENUES % 2 == 0  # shifts from other clips than those scored, every venue in both
    part = summaries[torch.tensor(estimate)], frame[estimate].reset_index(drop=True), CLASSES
    shifts, by_venue = cs.class_shifts(*part), cs.venue_shifts(*part)
    scored = frame[~estimate].reset_index(drop=True)
    counts = cs.correct_counts(summaries[torch.tensor(~estimate)], scored, shifts, by_venue, names, CLASSES)
    per_domain = scored["domain"].value_counts()
    return {row: 100 * n / per_domain["clean" if row == "clean" else "wild"] for row, n in counts.items()}


def test_a_shift_common_to_every_class_is_undone_by_one_fix():
    accuracy = _accuracy(lambda i, v, names: 2.5 * names[0])  # every clip pulled toward class 0
    assert accuracy["wild"] < accuracy["clean"] - 30
    assert min(accuracy["common"], accuracy["venue"], accuracy["own"]) > accuracy["clean"] - 5


def test_a_shift_of_each_class_its_own_way_needs_a_fix_per_class():
    accuracy = _accuracy(lambda i, v, names: 2.5 * (names[(i + 1) % len(CLASSES)] - names[i]))  # toward a neighbour
    assert accuracy["wild"] < accuracy["clean"] - 30
    assert max(accuracy["common"], accuracy["venue"]) < accuracy["wild"] + 10
    assert accuracy["own"] > accuracy["clean"] - 5


def test_a_shift_of_each_venue_the_same_for_every_class_is_undone_by_a_fix_per_venue():
    accuracy = _accuracy(lambda i, v, names: 2.5 * names[v])  # each venue pulls toward a class of its own
    assert accuracy["wild"] < accuracy["clean"] - 20
    assert accuracy["common"] < accuracy["wild"] + 10
    assert accuracy["venue"] > accuracy["clean"] - 5


def test_a_venue_no_other_class_was_heard_at_falls_back_to_the_fix_for_every_class():
    others = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    alone = {"v0": torch.tensor([[float("nan"), float("nan")], [2.0, 2.0]])}
    assert torch.equal(cs._venue_fix(alone, "v0", 0, others), others[0])
    assert torch.equal(cs._venue_fix(alone, "v0", 1, others), torch.tensor([2.0, 2.0]))
    assert torch.equal(cs._venue_fix(alone, "v9", 1, others), others[1])


def test_the_common_share_is_the_part_of_each_shift_along_the_mean():
    assert cs.common_share(torch.tensor([[2.0, 0.0], [1.0, 0.0]])) == 100.0
    assert cs.common_share(torch.tensor([[1.0, 1.0], [1.0, -1.0]])) == 50.0
    assert cs.common_share(torch.tensor([[1.0, 0.0], [-1.0, 0.0]])) == 0.0  # no common direction


def test_a_class_without_clips_in_a_domain_is_named():
    frame = pd.DataFrame({"label": ["a", "a", "b"], "domain": ["clean", "wild", "clean"]})
    with pytest.raises(ValueError, match="no wild clip of class 'b'"):
        cs.class_shifts(torch.zeros(3, 4), frame, ["a", "b"])


def test_names_of_several_tokens_are_found():
    class Words:
        def tokenize(self, text):
            return text.split()

    assert cs.several_token_names(Words(), ["owl", "wind noise"]) == ["wind noise"]


def test_profiles_without_a_shift_to_split_say_why():
    profile = load_profile("smoke")
    assert cs.unmeasurable_reason(profile) is None
    control = load_profile("tiny-nocontext")
    assert "one domain" in cs.unmeasurable_reason(control)
    real = dataclasses.replace(profile, data=dataclasses.replace(profile.data, source="vggsound"))
    assert "several tokens" in cs.unmeasurable_reason(real)


def test_the_line_names_each_row():
    table = pd.DataFrame({"accuracy (%)": [70.3, 50.0, 51.0, 52.0, 70.7]}, index=list(cs.ROWS.values()))
    assert cs.common_shift_line(table) == ("wild clips 50.0% as trained (clean 70.3%); one fix for every class 51.0%, "
                                           "a fix per venue 52.0%, a fix per class 70.7%")
