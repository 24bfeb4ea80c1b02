"""The exploration chapter's pieces on hand-made tables: which clips it shows, the letter
probabilities and bars, and the selector linked to its panels. (The chapter itself runs in the
smoke notebooks, and the built page's selectors are switched in Chromium by `book_check`.)"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xmd_core import explore, explore_widgets
from xmd_core.mcq import LETTERS


class _Inputs:
    def __init__(self, analysis: pd.DataFrame):
        self._analysis = analysis

    def split(self, name: str) -> pd.DataFrame:
        assert name == "analysis"
        return self._analysis


def test_the_chosen_clips_are_the_first_held_out_clips_of_each_class():
    rows = pd.DataFrame({
        "clip": ["b3", "a2", "a1", "a0", "b1", "b2"],
        "label": ["b", "a", "a", "a", "b", "b"],
        "switch_split": ["val", "val", "train", "val", "val", "train"],
    })
    chosen = explore.chosen_clips(_Inputs(rows), per_class=2)
    assert chosen["clip"].tolist() == ["a0", "a2", "b1", "b3"]  # "a1", "b2" trained the switch
    with pytest.raises(ValueError, match="switch_split == 'val'"):
        explore.chosen_clips(_Inputs(rows.assign(switch_split="train")))


def test_letter_probabilities_are_the_softmax_of_the_letter_logits():
    logits = np.linspace(-2.0, 3.0, len(LETTERS))
    p = explore.letter_probabilities(logits)
    assert p.sum() == pytest.approx(1.0)
    assert p.argmax() == logits.argmax()
    assert p[1] / p[0] == pytest.approx(np.exp(logits[1] - logits[0]))
    assert explore.letter_probabilities(logits + 1000.0) == pytest.approx(p)  # no overflow


def test_letter_bars_colour_the_right_letter_and_the_wrong_pick():
    p = np.full(len(LETTERS), 0.05)
    p[2], p[4] = 0.3, 0.3
    bars = explore_widgets.letter_bars(p, predicted="E", answer="C")
    assert bars.count("<span title=") == len(LETTERS)
    assert f'title="C: 0.30" style="display:inline-block;width:9px;height:8px;background:{explore_widgets.RIGHT}' in bars
    assert f'title="E: 0.30" style="display:inline-block;width:9px;height:8px;background:{explore_widgets.PICKED}' in bars
    assert bars.count(explore_widgets.OTHER) == len(LETTERS) - 2
    assert "error row" in explore_widgets.letter_bars(None, None, "C")


def test_the_question_marks_the_answer_and_escapes_names():
    options = [f"class {i}" for i in range(len(LETTERS))]
    options[3] = "cat <purring>"
    html = explore_widgets.question_html(options, "D")
    assert '<li style="font-weight:bold">D. cat &lt;purring&gt;</li>' in html
    assert html.count("font-weight:bold") == 1


def test_a_selector_is_linked_to_a_stack_of_as_many_panels():
    import ipywidgets as widgets

    box = explore_widgets.linked_stack(["one", "two"], [widgets.HTML("1"), widgets.HTML("2")], "class")
    selector, stack = box.children
    assert explore_widgets.SELECTOR_CLASS in selector._dom_classes
    assert isinstance(stack, widgets.Stack) and stack.selected_index == 0
    from ipywidgets.widgets.widget import _instances
    from ipywidgets.widgets.widget_link import Link

    links = [w for w in _instances.values() if isinstance(w, Link)]  # jslink: synced in the page, not in the kernel
    assert any(link.source == (selector, "index") and link.target == (stack, "selected_index") for link in links)
    with pytest.raises(ValueError, match="2 titles for 1 panels"):
        explore_widgets.linked_stack(["one", "two"], [widgets.HTML("1")], "class")
