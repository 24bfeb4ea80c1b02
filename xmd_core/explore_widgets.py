"""The exploration chapter's widgets: a class selector over panels rendered at execution.

Everything a panel shows is HTML made when the notebook runs (the clip's audio and frames, the
question, every answerer's letter bars), and the selectors are linked to the panels on the
client side (`ipywidgets.jslink` of a Dropdown's `index` to a Stack's `selected_index`), so the
same widgets work live in JupyterLab and in the static book, where no kernel runs callbacks.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence

import ipywidgets as widgets
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from . import explore, plots
from .config import Profile
from .explore import ClipMedia
from .mcq import LETTERS

#: CSS classes the browser check looks for (`xmd_core.book_check`).
SELECTOR_CLASS = "xmd-explore-selector"
PANEL_CLASS = "xmd-explore-panel"
BAR_HEIGHT_PX = 28
RIGHT, PICKED, OTHER = "#2ca02c", "#d62728", "#9aa5b1"


def _data_uri(kind: str, payload: bytes) -> str:
    return f"data:{kind};base64,{base64.b64encode(payload).decode('ascii')}"


def media_html(media: ClipMedia) -> str:
    """The audio player and the frames, as the models got them."""
    width, height = media.frame_size
    frames = "".join(f'<img src="{_data_uri("image/jpeg", jpeg)}" width="{width}" height="{height}" alt="frame {i + 1}" style="margin-right:4px">'
                     for i, jpeg in enumerate(media.frames_jpeg))
    return (f'<audio controls preload="metadata" src="{_data_uri("audio/ogg", media.audio_ogg)}"></audio>'
            f'<div>{frames}</div><div style="font-size:85%;color:#555">audio at {media.sample_rate} Hz, '
            f'{len(media.frames_jpeg)} frame(s) of {width} x {height}</div>')


def question_html(options: Sequence[str], answer: str) -> str:
    bold = ' style="font-weight:bold"'
    items = "".join(f"<li{bold if LETTERS[i] == answer else ''}>{LETTERS[i]}. {html.escape(name)}</li>" for i, name in enumerate(options))
    return f'<ol style="list-style:none;padding-left:0;columns:2;margin:4px 0">{items}</ol>'


def letter_bars(probabilities: np.ndarray | None, predicted: str | None, answer: str) -> str:
    """Ten bars, one per letter: green the right letter, red a wrong pick, grey the rest."""
    if probabilities is None:
        return "<em>no letter probabilities (the answer is an error row)</em>"
    spans = []
    for letter, p in zip(LETTERS, probabilities):
        colour = RIGHT if letter == answer else PICKED if letter == predicted else OTHER
        height = max(1, round(BAR_HEIGHT_PX * float(p)))
        spans.append(f'<span title="{letter}: {p:.2f}" style="display:inline-block;width:9px;height:{height}px;'
                     f'background:{colour};margin-right:1px;vertical-align:bottom"></span>')
    return f'<span style="display:inline-block;height:{BAR_HEIGHT_PX}px">{"".join(spans)}</span>'


def answers_html(answers: pd.DataFrame, answer: str) -> str:
    """One table row per answerer: its bars, its letter and whether it is right."""
    rows = []
    for row in answers.itertuples():
        verdict = "error: " + html.escape(str(row.error)) if row.error else ("right" if row.correct else "wrong")
        rows.append(f"<tr><td style='text-align:left'>{html.escape(row.answerer)}</td><td>{letter_bars(row.probabilities, row.predicted, answer)}</td>"
                    f"<td>{html.escape(str(row.predicted or '-'))}</td><td>{verdict}</td></tr>")
    head = "<tr><th style='text-align:left'>answerer</th><th>P(A) ... P(J)</th><th>letter</th><th></th></tr>"
    return f"<table style='font-size:90%'>{head}{''.join(rows)}</table>"


def decisions_html(decisions: pd.DataFrame) -> str:
    parts = [f"{html.escape(r.direction)}: p(teacher better) {r.p_teacher_better:.2f}, {'open (the teacher teaches)' if r.open else 'closed'}"
             for r in decisions.itertuples()]
    return "<div><b>Switch</b> (held-out clip): " + "; ".join(parts) + "</div>" if parts else "<div><b>Switch</b>: no decision stored</div>"


def clip_panel(clip: pd.Series, media: ClipMedia, answers: pd.DataFrame, decisions: pd.DataFrame, draw: str = "") -> str:
    """One clip: media, draw (embedded world), question, switch decisions, letter bars."""
    header = f"<div><b>{html.escape(clip['clip'])}</b>{' &middot; ' + html.escape(draw) if draw else ''}</div>"
    return header + media_html(media) + question_html(clip["options"], clip["answer"]) + decisions_html(decisions) + answers_html(answers, clip["answer"])


def linked_stack(titles: Sequence[str], children: Sequence[widgets.Widget], description: str) -> widgets.VBox:
    """A Dropdown over `titles` linked on the client side to a Stack of `children`."""
    if len(titles) != len(children) or not titles:
        raise ValueError(f"{len(titles)} titles for {len(children)} panels")
    selector = widgets.Dropdown(options=list(titles), index=0, description=description, layout=widgets.Layout(width="480px"),
                                style={"description_width": "initial"})
    selector.add_class(SELECTOR_CLASS)
    stack = widgets.Stack(list(children), selected_index=0)
    widgets.jslink((selector, "index"), (stack, "selected_index"))
    return widgets.VBox([selector, stack])


def class_panel(label: str, summary: str, clip_panels: Sequence[tuple[str, str]]) -> widgets.VBox:
    """A class's summary above one tab per clip."""
    tabs = widgets.Tab([widgets.HTML(body) for _, body in clip_panels])
    for i in range(len(clip_panels)):
        tabs.set_title(i, f"clip {i + 1}")  # the theme cuts long titles; the panel's first line names the clip
    head = widgets.HTML(f'<div class="{PANEL_CLASS}" data-label="{html.escape(label)}"><h4>{html.escape(label)}</h4>{summary}</div>')
    return widgets.VBox([head, tabs])


def image_widget(png: bytes) -> widgets.Image:
    return widgets.Image(value=png, format="png")


# --- the chapter's two browsers -----------------------------------------------------------------


def _class_summary(label: str, accuracy: pd.DataFrame, groups: pd.Series | None) -> str:
    group = f"group <b>{html.escape(str(groups[label]))}</b>; " if groups is not None and label in groups.index else ""
    scores = ", ".join(f"{html.escape(name)} {value:.0f}%" for name, value in accuracy.loc[label].items()) if label in accuracy.index else ""
    return f"<div style='font-size:90%'>{group}test accuracy: {scores}</div>"


def class_browser(profile: Profile, inputs, per_class: int = explore.CLIPS_PER_CLASS, progress: bool = True) -> widgets.VBox:
    """Pick a class, then one of its held-out clips: media, question, switch, every answerer's bars."""
    clips = explore.chosen_clips(inputs, per_class)
    answers = explore.clip_answers(profile, clips)
    decisions = explore.switch_decisions(profile, clips)
    draws = explore.draw_descriptions(profile, clips)
    accuracy = explore.classwise_accuracy(profile)
    groups = explore.class_groups(profile)
    panels, titles = [], []
    for label, rows in tqdm(clips.groupby("label", sort=True), desc="explore panels", disable=not progress):
        clip_panels = [(row["clip"], clip_panel(row, explore.clip_media(row["path"], profile), answers[answers["clip"] == row["clip"]],
                                                decisions[decisions["clip"] == row["clip"]], draws.get(row["clip"], "")))
                       for _, row in rows.iterrows()]
        panels.append(class_panel(label, _class_summary(label, accuracy, groups), clip_panels))
        titles.append(label if groups is None else f"{label} ({groups.get(label, '?')})")
    return linked_stack(titles, panels, "class")


def scatter_browser(profile: Profile, split: str = "test") -> widgets.VBox:
    """Pick two answerers: their class-wise accuracies, one dot per class (every pair drawn at
    execution, so the static page can switch between them)."""
    wide = explore.classwise_accuracy(profile, split)
    groups = explore.class_groups(profile)
    pairs = [(x, y) for i, x in enumerate(wide.columns) for y in wide.columns[i + 1:]]
    images = [image_widget(plots.png_bytes(plots.accuracy_scatter(wide, x, y, groups))) for x, y in pairs]
    return linked_stack([f"{y} against {x}" for x, y in pairs], images, "models")
