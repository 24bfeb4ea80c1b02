"""Venues: the class-correlated context of the embedded world (version 2).

Every clip happens at a venue (a crowd, a room, a street, water, ...). The venue is heard as an
ambience bed under the clip's sound and seen as the scene behind its object, whether or not the
class's own sound or sight is in the clip. Which venue a clip happens at is drawn from its
class's own mixture over the shared pool (:func:`venue_mixture`, Dirichlet with concentration
`MIXTURE_ALPHA`), so a venue is informative about the class but not a giveaway:
:func:`venue_only_accuracy` is what an observer who knew every mixture would reach from the
venue alone, on a set of questions.

This is the cue that a student can learn from a teacher of the other modality: where the audio
carries no sound of the class, its ambience still says where the clip was filmed, and the
visual teacher's labels tie that to the class.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..config import WorldConfig
from .classes import rng_for

#: The shared pool of venues: (name, video scene kind, scene hue). Each kind is used by two
#: venues of clearly different hue, so the scene alone tells every venue apart.
VENUES = (
    ("crowd", "bands", 0.02),
    ("room", "room", 0.08),
    ("street", "vignette", 0.6),
    ("water", "sky", 0.55),
    ("forest", "vignette", 0.3),
    ("workshop", "room", 0.62),
    ("field", "sky", 0.15),
    ("rain", "bands", 0.7),
)
VENUE_NAMES = tuple(name for name, _, _ in VENUES)
#: Dirichlet concentration of a class's venue mixture: small, so each class has one to three
#: venues of its own, shared with other classes. (0.35 in the first version 2 run: the venue then
#: answered 40% of the questions alone, and the audio student's gain sat mostly on audible clips.)
MIXTURE_ALPHA = 0.25


def venue_mixture(seed: int, label: str) -> np.ndarray:
    """The class's probabilities over `VENUE_NAMES` (a function of world seed and label)."""
    rng = rng_for(seed, "venues", label)
    return rng.dirichlet(np.full(len(VENUES), MIXTURE_ALPHA))


def venue_weights(world: WorldConfig, labels: Sequence[str]) -> pd.DataFrame:
    """P(venue | class) of each label as `world` draws its clips' venues (rows: labels, columns:
    venues); all alike where the world draws venues uniformly (`world.context` off)."""
    uniform = np.full(len(VENUES), 1.0 / len(VENUES))
    rows = [venue_mixture(world.seed, label) if world.context else uniform for label in labels]
    return pd.DataFrame(rows, index=list(labels), columns=list(VENUE_NAMES))


def draw_venue(rng: np.random.Generator, mixture: np.ndarray | None) -> str:
    """One venue from a mixture; `None` draws uniformly (context that says nothing of the class)."""
    p = np.full(len(VENUES), 1.0 / len(VENUES)) if mixture is None else mixture
    return VENUE_NAMES[int(rng.choice(len(VENUES), p=p))]


def scene_style(venue: str) -> tuple[str, float]:
    """(scene kind of `video.SCENES`, hue in [0, 1)) that shows a venue."""
    for name, kind, hue in VENUES:
        if name == venue:
            return kind, hue
    raise KeyError(f"unknown venue {venue!r}; venues are {VENUE_NAMES}")


# --- ambience beds ----------------------------------------------------------------------------


def _shaped_noise(rng: np.random.Generator, n: int, sr: int, gain_fn) -> np.ndarray:
    freqs = np.fft.rfftfreq(n, 1.0 / sr)
    white = rng.standard_normal(len(freqs)) + 1j * rng.standard_normal(len(freqs))
    x = np.fft.irfft(white * gain_fn(np.maximum(freqs, 1.0)), n=n)
    return x / (np.std(x) + 1e-12)


def _band(centre: float, octaves: float):
    return lambda f: np.exp(-0.5 * (np.log2(f / centre) / octaves) ** 2)


def _bursts(rng: np.random.Generator, n: int, sr: int, rate: float, length_s: float) -> np.ndarray:
    """An envelope of random bursts (`rate` per second, each about `length_s` long)."""
    env = np.zeros(n)
    width = max(int(length_s * sr), 1)
    shape = np.hanning(2 * width)[:width] if width > 1 else np.ones(1)
    shape = np.concatenate([shape, shape[::-1]])
    for onset in rng.uniform(0, n, rng.poisson(rate * n / sr)).astype(int):
        end = min(n, onset + len(shape))
        env[onset:end] += shape[: end - onset] * rng.uniform(0.5, 1.0)
    return env


def _babble(rng, n, sr):
    """Crowd: many voices, a band around speech formants with syllable-rate swells."""
    swell = 1.0 + 0.8 * np.sin(2 * np.pi * rng.uniform(3, 5) * np.arange(n) / sr + rng.uniform(0, 6.3))
    return _shaped_noise(rng, n, sr, _band(700.0, 0.9)) * swell


def _room_tone(rng, n, sr):
    """Room: a low hum with a soft ventilation hiss."""
    t = np.arange(n) / sr
    hum = np.sin(2 * np.pi * rng.uniform(95, 125) * t) + 0.5 * np.sin(2 * np.pi * rng.uniform(190, 250) * t)
    return hum + 0.4 * _shaped_noise(rng, n, sr, _band(2500.0, 1.2))


def _traffic(rng, n, sr):
    """Street: low rumble with passing swells."""
    swell = 0.4 + _bursts(rng, n, sr, 1.5, 0.5)
    return _shaped_noise(rng, n, sr, _band(120.0, 1.0)) * swell


def _water(rng, n, sr):
    """Water: broadband wash with a slow, deep modulation."""
    wave = 1.0 + 0.7 * np.sin(2 * np.pi * rng.uniform(0.4, 0.9) * np.arange(n) / sr + rng.uniform(0, 6.3))
    return _shaped_noise(rng, n, sr, lambda f: f**-0.3) * wave


def _birds(rng, n, sr):
    """Forest: short high chirps over a faint leaf rustle."""
    t = np.arange(n) / sr
    chirp = np.sin(2 * np.pi * (rng.uniform(3000, 4500) * t + 800 * np.sin(2 * np.pi * 12 * t)))
    return chirp * _bursts(rng, n, sr, 4.0, 0.04) + 0.3 * _shaped_noise(rng, n, sr, _band(5000.0, 1.0))


def _machinery(rng, n, sr):
    """Workshop: a periodic clank over a steady motor whine."""
    t = np.arange(n) / sr
    period = rng.uniform(0.25, 0.4)
    clank = _shaped_noise(rng, n, sr, _band(1800.0, 0.5)) * (np.mod(t, period) < 0.03)
    return clank + 0.3 * np.sin(2 * np.pi * rng.uniform(400, 500) * t)


def _wind(rng, n, sr):
    """Field: low, gusting wind."""
    gust = 0.5 + np.interp(np.arange(n), np.linspace(0, n, 6), rng.uniform(0.2, 1.5, 6))
    return _shaped_noise(rng, n, sr, _band(300.0, 1.5)) * gust


def _rain(rng, n, sr):
    """Rain: dense tiny ticks over a high hiss."""
    ticks = np.zeros(n)
    ticks[rng.integers(0, n, int(300 * n / sr))] = rng.uniform(0.5, 1.5, int(300 * n / sr))
    return ticks * 8.0 + _shaped_noise(rng, n, sr, _band(6000.0, 1.0))


AMBIENCE = {
    "crowd": _babble,
    "room": _room_tone,
    "street": _traffic,
    "water": _water,
    "forest": _birds,
    "workshop": _machinery,
    "field": _wind,
    "rain": _rain,
}


def ambience(venue: str, rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """The venue's ambience bed, `n` samples at `sr`, unit RMS."""
    if venue not in AMBIENCE:
        raise KeyError(f"unknown venue {venue!r}; venues are {VENUE_NAMES}")
    bed = AMBIENCE[venue](rng, n, sr)
    return bed / (np.sqrt(np.mean(bed * bed)) + 1e-12)


# --- how much the venue says ------------------------------------------------------------------


def venue_only_accuracy(options: Sequence[Sequence[str]], answers: Sequence[int], venues: Sequence[str], mixtures: pd.DataFrame) -> float:
    """Expected accuracy, on these questions, of an observer who perceives only each clip's venue
    and knows every class's mixture (`mixtures`: P(venue | class), rows labels, columns venues):
    it answers the option most likely to be filmed at that venue, ties broken at random. An
    option without a mixture (a class outside the world) counts as never filmed there."""
    expected = 0.0
    for opts, answer, venue in zip(options, answers, venues):
        best = likeliest_options(opts, venue, mixtures)
        expected += (answer in best) / len(best)
    return expected / max(len(answers), 1)


def likeliest_options(options: Sequence[str], venue: str, mixtures: pd.DataFrame) -> set[int]:
    """Indices of the options most likely filmed at `venue` (`mixtures` as in
    :func:`venue_only_accuracy`; an option without a mixture counts as never filmed there, and
    all tie when none has one)."""
    scores = mixtures[venue].reindex(list(options), fill_value=0.0).to_numpy()
    return set(np.flatnonzero(scores == scores.max()).tolist())
