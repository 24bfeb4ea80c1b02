"""Whether a distilled student uses the venue as a rule or class by class (xmd_core.venue_use)."""

import pandas as pd
import pytest

from xmd_core.venue_use import has_class_venues, venue_rule_line, venue_top_share
from xmd_core.world.context import likeliest_options

MIXTURES = pd.DataFrame({"crowd": [0.7, 0.2, 0.1], "water": [0.1, 0.1, 0.8]}, index=["lacrosse", "tennis", "kayak"])


def test_the_venue_top_option_is_the_one_most_likely_filmed_there():
    assert likeliest_options(["tennis", "lacrosse", "kayak"], "crowd", MIXTURES) == {1}
    # a name outside the world is never filmed anywhere; all tie when no option is known
    assert likeliest_options(["owl", "kayak"], "water", MIXTURES) == {1}
    assert likeliest_options(["owl", "bat"], "water", MIXTURES) == {0, 1}


def test_venue_top_share_counts_letters_that_name_the_venue_top_option():
    frame = pd.DataFrame({
        "clip": ["a", "b", "c", "d"],
        "options": [["tennis", "lacrosse"], ["tennis", "lacrosse"], ["kayak", "tennis"], ["kayak", "tennis"]],
        "predicted": ["B", "A", "A", ""],  # the last gave no letter: not a venue-top answer
        "answer": ["B", "B", "B", "A"],
    })
    venues = pd.Series({"a": "crowd", "b": "crowd", "c": "water", "d": "water"})
    assert venue_top_share(frame, venues, MIXTURES, "predicted") == 50.0
    assert venue_top_share(frame, venues, MIXTURES, "answer") == 75.0


def test_the_rule_line_gives_each_split_before_and_after():
    table = pd.DataFrame({"venue-top answers before (%)": [26.3, 25.8], "venue-top answers after (%)": [32.3, 24.6]},
                         index=["distilled classes (test)", "unseen classes"])
    assert venue_rule_line(table) == "distilled classes (test): 26.3% -> 32.3%; unseen classes: 25.8% -> 24.6%"


def test_a_clip_missing_from_the_world_is_named():
    frame = pd.DataFrame({"clip": ["a", "zz"], "options": [["tennis"], ["kayak"]], "predicted": ["A", "A"]})
    with pytest.raises(KeyError, match="'zz'"):
        venue_top_share(frame, pd.Series({"a": "crowd"}), MIXTURES, "predicted")


def test_only_worlds_with_class_correlated_venues_are_measured():
    from xmd_core.config import load_profile

    assert has_class_venues(load_profile("tiny"))
    assert not has_class_venues(load_profile("tiny-nocontext"))  # venues drawn uniformly
    assert not has_class_venues(load_profile("full"))  # VGGSound: no world, no venues
