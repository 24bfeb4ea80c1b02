"""Whether the student's input carries the clip's venue (xmd_core.venue_readout)."""

import dataclasses

import numpy as np
import pytest

from xmd_core import venue_readout as vr
from xmd_core.config import load_profile


def _summaries(venue_strength: float, n: int = 400, venues: int = 4, seed: int = 0):
    """Summaries in which each venue adds its own direction, `venue_strength` times, to noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(venues, size=n)
    directions = rng.standard_normal((venues, 16))
    return rng.standard_normal((n, 16)) + venue_strength * directions[labels], np.array([f"v{k}" for k in labels], dtype=object)


def test_a_venue_written_into_the_summaries_is_read():
    summaries, venues = _summaries(venue_strength=2.0)
    assert vr.probe_accuracy(summaries, venues) > 90


def test_summaries_without_the_venue_read_at_chance():
    summaries, venues = _summaries(venue_strength=0.0)
    assert vr.probe_accuracy(summaries, venues) < 40  # four venues: chance is about 25%


def test_a_group_too_small_to_probe_has_no_read_and_says_how_many_clips():
    summaries, venues = _summaries(venue_strength=2.0, n=3)
    row = vr.readout_row(summaries, venues)
    assert row["clips"] == 3 and np.isnan(row["venue read (%)"])
    with pytest.raises(ValueError, match="at least 5 clips"):
        vr.probe_accuracy(summaries, venues)
    with pytest.raises(ValueError, match="nothing to read"):
        vr.probe_accuracy(np.zeros((10, 2)), np.array(["bar"] * 10, dtype=object))


def test_real_data_says_why_it_is_not_measured():
    profile = load_profile("smoke")
    assert vr.unmeasurable_reason(profile) is None
    real = dataclasses.replace(profile, data=dataclasses.replace(profile.data, source="vggsound"))
    assert "venue" in vr.unmeasurable_reason(real)


def test_the_sentence_reads_the_clips_without_the_class_or_says_they_are_too_few():
    import pandas as pd

    from xmd_core.signal_split import CARRIED, NOT_CARRIED

    table = pd.DataFrame({"clips": [600, 600], "venue read (%)": [90.2, 67.3], "commonest venue (%)": [22.3, 20.5], "venues": [8, 8]},
                         index=[NOT_CARRIED, CARRIED])
    assert "**90.2%**" in vr.readout_sentence(table, "qwen2-audio") and "8 venues is 22.3%" in vr.readout_sentence(table, "qwen2-audio")
    table.loc[CARRIED, ["clips", "venue read (%)"]] = [4, float("nan")]
    assert vr.readout_sentence(table, "qwen2-audio").endswith(f"Not probed, with fewer than 5 clips or one venue: the clips whose input {CARRIED}.")
    table.loc[NOT_CARRIED, ["clips", "venue read (%)"]] = [3, float("nan")]
    assert vr.readout_sentence(table, "qwen2-audio").startswith("Too few clips without their class's own signal (3, or one venue)")
