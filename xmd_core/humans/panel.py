"""A simulated panel of observers for the embedded profile (the book's chapter 02_human_study).
It is a simulation, not people: wherever its trials appear they carry
``source = "simulated"``, and the book labels them so.

Each clip of the embedded world drew whether its class can be heard (``audible``) and seen
(``visible``). An observer answers a trial in three steps:

1. *Is the cue there?* Ears (``audio``) need an audible clip, eyes (``silent_video``) a visible
   one, ears and eyes (``sounded_video``) either.
2. *Is it recognised?* With the cue there, the observer recognises the class with probability
   ``sigmoid(base + ability[participant] + ease[clip])``: ``base`` per channel (both channels
   together when the clip is audible and visible under sounded video), participant ability and
   clip ease random effects with standard deviations ``ability_sd`` and ``clip_sd``.
3. *Otherwise* (no cue, not recognised, or a lapse of attention at the participant's own lapse
   rate, drawn from a Beta distribution) the observer guesses among the options; a small share of
   trials is skipped. Every clip shows and sounds its venue (`world.context`), so on a share
   ``venue_context`` of the guesses that are not lapses the observer picks an option in proportion
   to how likely that option's class is filmed at the clip's venue, as the paper's participants
   said they did ("I used some context clues"; "If there was no sound, I guessed what I would
   hear based on the video"). The observer knows every class's venue mixture.

The default parameters are chosen, not fitted, so that on the embedded world's Figure-1 classes
the panel lands in the range the paper's people reached (ears 71.9%, eyes 74.1%, ears and eyes
84.2%); they say nothing about real listeners.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from ..config import Profile
from ..mcq import LETTERS
from ..world.context import venue_weights
from .schema import validate_trials


@dataclass(frozen=True)
class PanelParams:
    logit_audio: float = 1.6  # log-odds of recognising the class from its sound, the cue being there
    logit_silent_video: float = 2.6  # ... from its picture
    logit_sounded_video: float = 2.8  # ... from both, when the clip is audible and visible
    ability_sd: float = 0.5  # participant random effect (log-odds)
    clip_sd: float = 0.8  # clip random effect (log-odds), shared by the three conditions
    lapse_mean: float = 0.03  # mean per-participant lapse rate (a guess whatever the clip)
    lapse_concentration: float = 40.0  # Beta(mean * c, (1 - mean) * c)
    guess_when_unsure: bool = True  # unrecognised: guess among all options (else pick a wrong one)
    venue_context: float = 0.7  # share of guesses (not lapses) that use the clip's venue
    skip_rate: float = 0.005
    rt_median_s: float = 4.5  # response time of an audio trial; video trials add rt_video_s
    rt_video_s: float = 1.0
    rt_sd_log: float = 0.45
    rt_unsure_factor: float = 1.4  # unrecognised trials take longer

    def validate(self) -> None:
        for name in ("ability_sd", "clip_sd", "rt_sd_log", "rt_video_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"PanelParams.{name} must be >= 0 (got {getattr(self, name)})")
        for name in ("lapse_mean", "skip_rate"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"PanelParams.{name} must lie in [0, 1) (got {getattr(self, name)})")
        if not 0 <= self.venue_context <= 1:
            raise ValueError(f"PanelParams.venue_context must lie in [0, 1] (got {self.venue_context})")
        if self.lapse_concentration <= 0 or self.rt_median_s <= 0 or self.rt_unsure_factor <= 0:
            raise ValueError("PanelParams.lapse_concentration, rt_median_s and rt_unsure_factor must be > 0")

    def table(self) -> pd.DataFrame:
        """The parameters as a two-column table, for the book."""
        return pd.DataFrame({"parameter": list(asdict(self)), "value": list(asdict(self).values())})


def world_clip_info(profile: Profile) -> pd.DataFrame:
    """clip, audible, visible, venue of every clip of the embedded world (the draws behind each clip)."""
    if profile.data.source != "world":
        raise ValueError(
            f"profile {profile.name!r} runs on real clips ({profile.data.source}); the simulated panel exists only in the "
            f"embedded world. Run the listening/viewing test (xmd_core.humans.widget) and pass its trials file instead."
        )
    path = profile.world_dir / "clips.csv"
    if not path.is_file():
        raise FileNotFoundError(f"no world index at {path}: build the world first (xmd world --profile {profile.name})")
    return pd.read_csv(path, usecols=["clip", "audible", "visible", "venue"], dtype={"clip": str, "venue": str})


def world_venue_weights(profile: Profile) -> pd.DataFrame:
    """P(venue | class) of every class of the embedded world (rows: labels, columns: venues); all
    alike where the world draws venues uniformly (`world.context` off)."""
    path = profile.world_dir / "classes.csv"
    if not path.is_file():
        raise FileNotFoundError(f"no world classes at {path}: build the world first (xmd world --profile {profile.name})")
    return venue_weights(profile.world, pd.read_csv(path, usecols=["label"])["label"].tolist())


def cue_present(condition: np.ndarray, audible: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """Whether the input of each condition carries the class itself: the sound (audio), the
    picture (silent video), either (sounded video)."""
    ears, eyes, both = condition == "audio", condition == "silent_video", condition == "sounded_video"
    return (ears & audible) | (eyes & visible) | (both & (audible | visible))


def _cue(condition: np.ndarray, audible: np.ndarray, visible: np.ndarray, params: PanelParams) -> tuple[np.ndarray, np.ndarray]:
    """Whether the trial carries a cue, and the base log-odds of recognising it."""
    ears, eyes, both = condition == "audio", condition == "silent_video", condition == "sounded_video"
    informative = cue_present(condition, audible, visible)
    base = np.full(len(condition), np.nan)
    base[ears] = params.logit_audio
    base[eyes] = params.logit_silent_video
    base[both & audible & visible] = params.logit_sounded_video
    base[both & audible & ~visible] = params.logit_audio
    base[both & ~audible & visible] = params.logit_silent_video
    return informative, base


def _venue_guess(options: pd.Series, venues: np.ndarray, weights: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """For each row, the index of an option drawn in proportion to P(row's venue | option's class)."""
    unknown = sorted({o for opts in options for o in opts} - set(weights.index))
    if unknown:
        raise ValueError(f"no venue mixture for option class(es) {unknown[:3]}")
    out = np.empty(len(options), dtype=int)
    for k, (opts, venue) in enumerate(zip(options, venues)):
        p = weights.loc[list(opts), venue].to_numpy(float)
        out[k] = int(rng.choice(len(opts), p=p / p.sum()))
    return out


def simulate_panel(
    design: pd.DataFrame,
    clip_info: pd.DataFrame,
    params: PanelParams = PanelParams(),
    seed: int = 0,
    venue_weights: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Trials (the schema of :mod:`.schema`, ``source = "simulated"``) for every row of a design.

    `clip_info` gives ``audible`` and ``visible`` (and ``venue``) for each clip of the design;
    `venue_weights` P(venue | class) of every class among the options (needed when
    ``params.venue_context``: :func:`world_venue_weights`).
    """
    info = _clip_draws(design, clip_info, params, venue_weights)
    rng = np.random.default_rng([seed, 7])
    n = len(design)
    ability, lapse_rate, ease = _random_effects(design, params, rng)

    condition = design["condition"].to_numpy()
    audible = info.loc[design["clip"], "audible"].to_numpy(dtype=bool)
    visible = info.loc[design["clip"], "visible"].to_numpy(dtype=bool)
    informative, base = _cue(condition, audible, visible, params)
    eta = np.where(informative, base, 0.0) + ability.loc[design["participant"]].to_numpy() + ease.loc[design["clip"]].to_numpy()
    p_recognise = np.where(informative, 1.0 / (1.0 + np.exp(-eta)), 0.0)
    lapse = rng.random(n) < lapse_rate.loc[design["participant"]].to_numpy()
    recognised = ~lapse & (rng.random(n) < p_recognise)

    n_options = design["options"].map(len).to_numpy()
    answer_index = np.array([LETTERS.index(a) for a in design["answer"]])
    guess = np.floor(rng.random(n) * n_options).astype(int)
    # a wrong letter, uniform over the other options
    wrong = (answer_index + 1 + np.floor(rng.random(n) * (n_options - 1)).astype(int)) % n_options
    uninformed = lapse | ~informative
    if params.venue_context > 0:
        context = ~lapse & (rng.random(n) < params.venue_context)
        venues = info.loc[design["clip"], "venue"].to_numpy()
        guess[context] = _venue_guess(design.loc[context, "options"], venues[context], venue_weights, rng)
    if params.guess_when_unsure:
        chosen = np.where(recognised, answer_index, guess)
    else:
        chosen = np.where(recognised, answer_index, np.where(uninformed, guess, wrong))
    skipped = rng.random(n) < params.skip_rate
    response = [None if s else LETTERS[c] for s, c in zip(skipped, chosen)]

    is_video = condition != "audio"
    median = params.rt_median_s + params.rt_video_s * is_video
    median = median * np.where(recognised, 1.0, params.rt_unsure_factor)
    rt = np.round(median * np.exp(rng.normal(0.0, params.rt_sd_log, n)), 3)

    return _as_trials(design, response, rt)


def _clip_draws(design: pd.DataFrame, clip_info: pd.DataFrame, params: PanelParams, venue_weights: pd.DataFrame | None) -> pd.DataFrame:
    """The draws of the design's clips, by clip; the parameters and inputs checked."""
    params.validate()
    if params.venue_context > 0 and (venue_weights is None or "venue" not in clip_info):
        raise ValueError("params.venue_context needs each clip's venue and the venue weights (panel.world_venue_weights(profile))")
    info = clip_info.drop_duplicates("clip").set_index("clip")
    absent = sorted(set(design["clip"]) - set(info.index))
    if absent:
        raise ValueError(f"no audible/visible draws for {len(absent)} clip(s) of the design, e.g. {absent[:3]}")
    return info


def _random_effects(design: pd.DataFrame, params: PanelParams, rng: np.random.Generator) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Each participant's ability and lapse rate, and each clip's ease (drawn in this order)."""
    participants = np.sort(design["participant"].unique())
    clips = np.sort(design["clip"].unique())
    ability = pd.Series(rng.normal(0.0, params.ability_sd, len(participants)), index=participants)
    lapse_rate = pd.Series(
        rng.beta(params.lapse_mean * params.lapse_concentration, (1 - params.lapse_mean) * params.lapse_concentration, len(participants))
        if params.lapse_mean > 0
        else np.zeros(len(participants)),
        index=participants,
    )
    ease = pd.Series(rng.normal(0.0, params.clip_sd, len(clips)), index=clips)
    return ability, lapse_rate, ease


def _as_trials(design: pd.DataFrame, response: list[str | None], rt: np.ndarray) -> pd.DataFrame:
    """The trials table (the schema of :mod:`.schema`, checked) of the design's rows."""
    trials = pd.DataFrame(
        {
            "participant": design["participant"].to_numpy(),
            "trial": design["trial"].to_numpy(),
            "clip": design["clip"].to_numpy(),
            "label": design["label"].to_numpy(),
            "condition": design["condition"].to_numpy(),
            "options": design["options"].map(list).to_numpy(),
            "answer": design["answer"].to_numpy(),
            "response": pd.Series(response, dtype=object).to_numpy(),
            "correct": np.array([r == a for r, a in zip(response, design["answer"])], dtype=bool),
            "rt_s": rt,
            "source": "simulated",
        }
    )
    return validate_trials(trials, where="simulated panel").sort_values(["participant", "trial"]).reset_index(drop=True)


def simulate_for_profile(profile: Profile, design: pd.DataFrame, params: PanelParams = PanelParams(), seed: int = 0) -> pd.DataFrame:
    """The simulated panel over a design of the embedded profile, stored beside the design
    (``results/<profile>/human_study/trials_simulated.parquet``)."""
    from .design import study_dir
    from .schema import write_trials

    trials = simulate_panel(design, world_clip_info(profile), params, seed, venue_weights=world_venue_weights(profile))
    write_trials(trials, study_dir(profile) / "trials_simulated.parquet")
    return trials
