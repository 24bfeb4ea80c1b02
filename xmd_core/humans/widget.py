"""The listening/viewing test: one trial at a time, in JupyterLab (ipywidgets).

A participant sees the same prompt and options as the models and hears the audio (``audio.wav``),
watches the silent video (``silent_video.mp4``) or the sounded video (``sounded_video.mp4``) of the
trial's condition: the files :func:`xmd_core.media.export_inputs` writes, so people get exactly
the signal the models get (16 kHz mono audio, 1 frame per second). A click on a letter records the
answer and the response time (from the trial's display to the click); "Skip" records no answer.
After every trial the participant's trials file is rewritten atomically, so closing the notebook
loses nothing, and a participant who comes back resumes at the first trial not yet answered.

Run it in JupyterLab::

    from xmd_core.humans.widget import ListeningTest
    ListeningTest.for_profile("tiny", participant="P001")

then give the folder of trials files to the human-study notebook (``trials_path``).
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import ipywidgets as widgets
import pandas as pd
from IPython.display import display
from tqdm.auto import tqdm

from ..config import Profile, load_profile
from ..mcq import LETTERS, PROMPT_HEAD, prompt_tail
from ..media import export_inputs
from .design import CONDITIONS, design_path, load_design, trials_dir
from .schema import TRIAL_COLUMNS, TrialsError, empty_trials, read_trials, validate_trials, write_trials

INSTRUCTIONS = {
    "audio": "Listen to the clip (sound only), then choose what is making the sound.",
    "silent_video": "Watch the clip (no sound), then choose what is making the sound.",
    "sounded_video": "Watch and listen to the clip, then choose what is making the sound.",
}

# (clip, path of the source clip) -> {condition: file of that condition's input}
MediaSource = Callable[[str, str], Mapping[str, Path]]


class ExportedMedia:
    """The paper's three inputs of each clip, exported once under ``root/<clip>/`` and reused."""

    FILES = {"audio": "audio.wav", "silent_video": "silent_video.mp4", "sounded_video": "sounded_video.mp4"}

    def __init__(self, root: str | Path, sample_rate: int = 16000, fps: float = 1.0, max_pixels: int = 262144):
        self.root = Path(root)
        self.sample_rate, self.fps, self.max_pixels = sample_rate, fps, max_pixels

    @classmethod
    def for_profile(cls, profile: Profile) -> ExportedMedia:
        """With the profile's media settings (the models' preprocessing), under its artifacts."""
        m = profile.media
        return cls(profile.artifacts_dir / "human_study" / "media", m.sample_rate, m.fps, m.max_pixels)

    def __call__(self, clip: str, path: str) -> dict[str, Path]:
        out = self.root / clip
        files = {condition: out / name for condition, name in self.FILES.items()}
        if not all(f.is_file() for f in files.values()):
            files = export_inputs(path, out, self.sample_rate, self.fps, self.max_pixels)
        return files


def export_design_media(design: pd.DataFrame, media: ExportedMedia, progress: bool = True) -> int:
    """Export every clip of a design ahead of the sessions (so no participant waits); returns the
    number of clips."""
    clips = design.drop_duplicates("clip")
    for clip, path in tqdm(zip(clips["clip"], clips["path"]), total=len(clips), desc="exporting media", disable=not progress):
        media(clip, path)
    return len(clips)


class ListeningTest:
    """The test of one participant over their trials of a design.

    `trials_path` is the participant's trials file (``.parquet`` or ``.csv``); None runs a
    preview that saves nothing. `clock` returns seconds (tests inject a fake one).
    """

    def __init__(
        self,
        design: pd.DataFrame,
        participant: str,
        trials_path: str | Path | None,
        media: MediaSource,
        clock: Callable[[], float] = time.monotonic,
        source: str = "human",
    ):
        plan = design[design["participant"] == participant].sort_values("trial").reset_index(drop=True)
        if plan.empty:
            known = sorted(design["participant"].unique())
            raise KeyError(f"participant {participant!r} is not in the design (participants {known[0]} .. {known[-1]})")
        self.participant, self.plan, self.media, self.clock, self.source = participant, plan, media, clock, source
        self.trials_path = None if trials_path is None else Path(trials_path)
        self._records: list[dict] = self._resume()
        self._current: int | None = None  # position in the plan of the trial on screen
        self._shown_at = 0.0
        self._build()
        self._show_start()

    @classmethod
    def for_profile(cls, profile: str | Path | Profile, participant: str, **kwargs) -> ListeningTest:
        """The test of `participant` over the profile's stored design (written by 02_human_study),
        saving to ``results/<profile>/human_study/trials/<participant>.parquet``."""
        cfg = profile if isinstance(profile, Profile) else load_profile(profile)
        design = load_design(design_path(cfg))
        return cls(design, participant, trials_dir(cfg) / f"{participant}.parquet", ExportedMedia.for_profile(cfg), **kwargs)

    # ---------------------------------------------------------------------------------------
    # state

    def _resume(self) -> list[dict]:
        if self.trials_path is None or not self.trials_path.is_file():
            return []
        done = read_trials(self.trials_path)
        others = sorted(set(done["participant"]) - {self.participant})
        if others:
            raise TrialsError(f"{self.trials_path} holds trials of other participant(s) {others}; each participant has a file of their own")
        planned = self.plan.set_index("trial")
        for row in done.itertuples():
            if row.trial not in planned.index:
                raise TrialsError(f"{self.trials_path}: trial {row.trial} is not in {self.participant}'s plan (1..{len(planned)})")
            want = planned.loc[row.trial]
            if (row.clip, row.condition, row.answer) != (want["clip"], want["condition"], want["answer"]):
                raise TrialsError(
                    f"{self.trials_path}: trial {row.trial} was {row.clip} under {row.condition}, but the design now plans "
                    f"{want['clip']} under {want['condition']}; was the design rebuilt since this participant started?"
                )
        return done.to_dict("records")

    @property
    def done_trials(self) -> set[int]:
        return {int(r["trial"]) for r in self._records}

    @property
    def pending(self) -> list[int]:
        """Positions in the plan of the trials not answered yet."""
        done = self.done_trials
        return [i for i, t in enumerate(self.plan["trial"]) if int(t) not in done]

    @property
    def finished(self) -> bool:
        return not self.pending

    @property
    def current_trial(self) -> int | None:
        """The trial number on screen, None on the start and end screens."""
        return None if self._current is None else int(self.plan["trial"].iloc[self._current])

    @property
    def trials(self) -> pd.DataFrame:
        """The trials answered so far (the schema of :mod:`.schema`)."""
        if not self._records:
            return empty_trials()
        return validate_trials(pd.DataFrame(self._records, columns=TRIAL_COLUMNS)).sort_values("trial").reset_index(drop=True)

    # ---------------------------------------------------------------------------------------
    # the widgets

    def _build(self) -> None:
        self.header = widgets.HTML()
        self.instruction = widgets.HTML()
        self.media_box = widgets.VBox()
        self.prompt = widgets.HTML()
        self.option_buttons = [widgets.Button(description=letter, layout=widgets.Layout(width="260px")) for letter in LETTERS]
        for letter, button in zip(LETTERS, self.option_buttons):
            button.on_click(lambda _button, letter=letter: self.respond(letter))
        self.skip_button = widgets.Button(description="Skip: I cannot tell", button_style="warning")
        self.skip_button.on_click(lambda _button: self.respond(None))
        self.start_button = widgets.Button(description="Start", button_style="primary")
        self.start_button.on_click(lambda _button: self.start())
        self.status = widgets.HTML()
        grid = widgets.GridBox(self.option_buttons, layout=widgets.Layout(grid_template_columns="repeat(2, 270px)"))
        self.answer_box = widgets.VBox([self.prompt, grid, self.skip_button])
        self.widget = widgets.VBox([self.header, self.instruction, self.media_box, self.answer_box, self.start_button, self.status])

    def _progress(self) -> str:
        return f"<b>Participant {html.escape(self.participant)}</b>: {len(self.done_trials)} of {len(self.plan)} trials done"

    def _show_start(self) -> None:
        self._current = None
        self.media_box.children = ()
        self.answer_box.layout.display = "none"
        self.header.value = self._progress()
        if self.finished:
            self.instruction.value = "All trials are done. Thank you!"
            self.start_button.layout.display = "none"
        else:
            first = not self._records
            self.instruction.value = (
                "Each trial plays a short clip: sometimes sound only, sometimes a silent video, sometimes a video with sound. "
                "Choose which of the ten options is making the sound; if you cannot tell, make your best guess or skip."
                if first
                else f"Welcome back: you continue at trial {len(self.done_trials) + 1} of {len(self.plan)}."
            )
            self.start_button.description = "Start" if first else "Continue"
            self.start_button.layout.display = None
        self.status.value = self._saved_note()

    def _saved_note(self) -> str:
        if self.trials_path is None:
            return "<i>Preview: answers are not saved.</i>"
        return f"<small>Answers are saved after every trial to {html.escape(str(self.trials_path))}</small>"

    def start(self) -> None:
        """Show the first trial not answered yet (the start button)."""
        if self.finished:
            self._show_start()
            return
        self.start_button.layout.display = "none"
        self._show(self.pending[0])

    def _show(self, position: int) -> None:
        row = self.plan.iloc[position]
        condition = row["condition"]
        if condition not in CONDITIONS:
            raise ValueError(f"unknown condition {condition!r} in the design")
        files = self.media(row["clip"], row["path"])
        data = Path(files[condition]).read_bytes()
        if condition == "audio":
            player = widgets.Audio(value=data, format="wav", autoplay=False, loop=False, controls=True)
        else:
            player = widgets.Video(value=data, format="mp4", autoplay=False, loop=False, controls=True, width=480)
        self.media_box.children = (player,)
        options = list(row["options"])
        self.prompt.value = f"<p>{html.escape(PROMPT_HEAD)}</p>"
        for i, button in enumerate(self.option_buttons):
            if i < len(options):
                button.description = f"{LETTERS[i]}. {options[i]}"
                button.tooltip = options[i]
                button.layout.display = None
                button.disabled = False
            else:
                button.layout.display = "none"
                button.disabled = True
        self.skip_button.disabled = False
        self.answer_box.layout.display = None
        self.instruction.value = f"<b>Trial {len(self.done_trials) + 1} of {len(self.plan)}.</b> {INSTRUCTIONS[condition]} " \
                                 f"<i>({html.escape(prompt_tail(len(options)))} Click one.)</i>"
        self.header.value = self._progress()
        self._current = position
        self._shown_at = self.clock()

    def respond(self, letter: str | None) -> None:
        """Record the answer to the trial on screen (a letter, or None to skip), save, go on."""
        if self._current is None:
            raise RuntimeError("no trial is on screen: press Start first")
        rt = max(0.0, self.clock() - self._shown_at)
        row = self.plan.iloc[self._current]
        if letter is not None and letter not in LETTERS[: len(row["options"])]:
            raise ValueError(f"{letter!r} is not one of the options' letters")
        for button in self.option_buttons:
            button.disabled = True
        self.skip_button.disabled = True
        record = {
            "participant": self.participant,
            "trial": int(row["trial"]),
            "clip": row["clip"],
            "label": row["label"],
            "condition": row["condition"],
            "options": list(row["options"]),
            "answer": row["answer"],
            "response": letter,
            "correct": letter == row["answer"],
            "rt_s": round(rt, 3),
            "source": self.source,
        }
        self._records.append(record)
        if self.trials_path is not None:
            try:
                write_trials(pd.DataFrame(self._records, columns=TRIAL_COLUMNS), self.trials_path)
            except BaseException:
                # not saved: take the answer back and let the participant answer again
                self._records.pop()
                for button in self.option_buttons[: len(row["options"])]:
                    button.disabled = False
                self.skip_button.disabled = False
                raise
        self._current = None
        if self.finished:
            self._show_start()
        else:
            self._show(self.pending[0])
        self.status.value = self._saved_note()

    def _ipython_display_(self) -> None:
        display(self.widget)
