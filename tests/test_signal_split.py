"""Where the gain comes from (embedded world): the share on clips without the class's own signal,
and the venue-only ceiling on that share, on hand-made tables."""

import numpy as np
import pandas as pd
import pytest

from xmd_core.signal_split import CARRIED, NOT_CARRIED, absence_sentence, gain_share_without_signal, side_by_side, venue_room, venue_room_sentence

OWN = "student's input (audible)"


def by_signal(gains, before, venue_only, clips=(100, 300)):
    return pd.DataFrame({OWN: [CARRIED, NOT_CARRIED], "clips": list(clips), "gain": gains, "before": before, "venue only": venue_only})


def test_the_share_of_the_gain_without_the_class_signal():
    table = by_signal([2.0, 6.0], [50.0, 10.0], [40.0, 40.0])
    assert gain_share_without_signal(table) == pytest.approx(1800 / 2000)
    assert np.isnan(gain_share_without_signal(table.assign(gain=[-1.0, 0.0])))


def test_venue_room_counts_answers_up_to_the_venue_only_observer():
    # 300 clips without the class, 10% right before, the venue-only observer at 40%: 90 answers of room
    room = venue_room(by_signal([0.0, 0.0], [50.0, 10.0], [40.0, 40.0]), required_gain=8.0)
    assert room["room (answers)"] == pytest.approx(90.0)
    assert room["required gain (answers)"] == pytest.approx(32.0)  # 8 points of 400 clips
    assert room["possible"] and room["clips without the class"] == 300 and room["clips"] == 400


def test_venue_room_too_small_for_most_of_the_gain():
    # 100 clips without the class (the rest carry it): 20 answers of room against 80 needed
    room = venue_room(by_signal([0.0, 0.0], [50.0, 10.0], [90.0, 30.0], clips=(900, 100)), required_gain=8.0)
    assert room["room (answers)"] == pytest.approx(20.0)
    assert room["share at most"] == pytest.approx(0.25)
    assert not room["possible"]
    assert "at most 25%" in venue_room_sentence(room, 8.0)


def test_venue_room_never_negative_where_the_student_is_above_the_observer():
    room = venue_room(by_signal([0.0, 0.0], [50.0, 60.0], [40.0, 40.0]), required_gain=8.0)
    assert room["room (answers)"] == 0.0 and not room["possible"]


def test_the_absence_sentence_compares_the_worlds_on_teacher_better_clips_without_the_class():
    rows = [(world, classes, signal, gain) for world, base in (("here", 26.0), ("control", 22.0))
            for classes, signal, gain in (("teacher better", NOT_CARRIED, base), ("teacher better", CARRIED, 20.0),
                                          ("student as good or better", NOT_CARRIED, -5.0))]
    table = pd.DataFrame(rows, columns=["world", "classes", OWN, "gain"]).assign(clips=150)
    text = absence_sentence(table, "here", "control")
    assert "**+26.0**" in text and "**+22.0**" in text and "+4.0 points" in text
    assert "nothing to compare" in absence_sentence(table[table.world == "here"], "here", "control")


def test_side_by_side_puts_each_worlds_rows_under_its_name():
    here, control = by_signal([2.0, 6.0], [50.0, 10.0], [40.0, 40.0]), by_signal([1.0, 5.0], [90.0, 5.0], [10.0, 10.0])
    table = side_by_side({"here": here, "control": control})
    assert table.columns[0] == "world" and table.world.tolist() == ["here", "here", "control", "control"]
    assert table.gain.tolist() == [2.0, 6.0, 1.0, 5.0]
