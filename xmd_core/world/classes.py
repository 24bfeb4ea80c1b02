"""Which VGGSound classes the embedded world uses, how often they are heard and seen, and how
alike they are within their category (the book's chapter 00_world).

Everything here follows from the real facts alone (VGGSound's `stat.csv`, VGGSounder's
modality tags, AudioSet's label list) and the world seed; nothing depends on a model result.

Groups (the three rows of the paper's Figure 1, plus the generalisation classes):

- ``heard``: largest P(audible) - P(visible) (wind noise, cricket chirping, ...);
- ``seen``: largest P(visible) - P(audible) (playing lacrosse, people running, ...);
- ``both``: largest min(P(audible), P(visible)) among the rest, i.e. clearly heard *and* seen;
- ``unseen``: VGGSound classes whose name is also an AudioSet display name, most visual first
  (where a visual teacher can help). The experts pre-train on them (as Qwen2-Audio knew
  AudioSet's classes), but they are kept out of the VGGSound splits, hence out of the switch and
  of distillation; their own `unseen` split draws its options from `mcq.unseen_options`' pool
  (the embedded profiles: AudioSet's label set as the experts know it, mostly the unseen classes).

Each group is spread over the categories: classes are taken greedily by score minus
``CATEGORY_PENALTY`` times the number already taken from the same category.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..config import WorldConfig
from ..data import audioset_names, modality_rates, normalise_name  # noqa: F401 (normalise_name re-exported)

GROUPS = ("heard", "seen", "both", "unseen")
PRETRAIN_GROUPS = GROUPS  # every class is pre-trained; see ``unseen`` above

#: Classes with fewer VGGSounder annotations than this have unreliable rates and are not chosen.
MIN_ANNOTATED = 20
#: Score penalty per class already chosen from the same category (spreads a group over categories).
CATEGORY_PENALTY = 0.12

#: The world's rates are the real (smoothed) VGGSounder rates raised to this power, the same
#: monotone transform for both modalities. 1.0 = the real rates unchanged. See `world_rate`.
RATE_GAMMA = 1.0

# --- the sensory gap by category -----------------------------------------------------------
# A class's signature is a vector of parameters u in [0, 1]^8 per modality. For category k it is
#   u = (1 - spread_k) * centre_k + spread_k * v_class        (centre_k, v_class ~ U(0,1)^8, hashed)
# and each clip adds U(-jitter_k, +jitter_k) to every parameter. A small spread with a large
# jitter makes the classes of a category hard to tell apart in that modality.
#: (spread, jitter) of the audio signature per category: sports and tools sound alike.
EAR_SPREAD = {
    "animals": (1.0, 0.03),
    "music": (1.0, 0.03),
    "people": (1.0, 0.03),
    "others": (1.0, 0.03),
    "vehicle": (0.8, 0.03),
    "nature": (0.7, 0.04),
    "home": (0.6, 0.04),
    "sports": (0.12, 0.06),
    "tools": (0.12, 0.06),
}
#: (spread, jitter) of the visual signature per category: people look alike (every people clip
#: shows a person; classes differ only by a small badge colour and the arm pose).
EYE_SPREAD = {
    "animals": (1.0, 0.02),
    "music": (1.0, 0.02),
    "people": (0.12, 0.05),
    "others": (1.0, 0.02),
    "vehicle": (1.0, 0.02),
    "nature": (0.8, 0.03),
    "home": (0.9, 0.02),
    "sports": (1.0, 0.02),
    "tools": (1.0, 0.02),
}
N_PARAMS = 8


def stable_seed(*parts: object) -> int:
    """A 64-bit seed from the parts' text (SHA-256; stable across runs, unlike `hash`)."""
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def rng_for(*parts: object) -> np.random.Generator:
    return np.random.default_rng(stable_seed(*parts))


def youtube_like_id(*parts: object) -> str:
    """11 characters of [A-Za-z0-9_-] from a hash of the parts, like a YouTube id."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()[:11]


def world_rate(p: float | np.ndarray, gamma: float = RATE_GAMMA) -> float | np.ndarray:
    """The world's Bernoulli rate from a real one: ``p ** gamma`` (monotone; 1.0 leaves it)."""
    return np.asarray(p, dtype=float) ** gamma


def _spread_pick(cands: pd.DataFrame, score: pd.Series, k: int) -> list[str]:
    """Greedily take `k` labels by score minus a penalty per class already taken in its category."""
    taken: list[str] = []
    per_cat: dict[str, int] = {}
    pool = cands.assign(_score=score).sort_values(["label"])
    while len(taken) < k and len(pool):
        adj = pool._score - CATEGORY_PENALTY * pool.category.map(lambda c: per_cat.get(c, 0))
        # ties: more annotations first, then the label (fully deterministic)
        order = pd.DataFrame({"adj": adj, "n": pool.n, "label": pool.label}).sort_values(
            ["adj", "n", "label"], ascending=[False, False, True]
        )
        best = order.index[0]
        label, cat = pool.at[best, "label"], pool.at[best, "category"]
        taken.append(label)
        per_cat[cat] = per_cat.get(cat, 0) + 1
        pool = pool.drop(index=best)
    if len(taken) < k:
        raise ValueError(f"only {len(taken)} candidate classes for a group of {k}")
    return taken


def select_classes(world_cfg: WorldConfig) -> pd.DataFrame:
    """The world's classes: label, category, count, p_audible, p_visible, group, audioset_name, ...

    `count` is VGGSound's real clip count; `p_audible`/`p_visible` are the rates the clips are
    drawn with (`world_rate` of the real smoothed rates, kept as `p_audible_real`/`p_visible_real`);
    `n_annotated` is the number of VGGSounder annotations behind them.
    """
    rates = modality_rates()
    rates = rates[rates.n >= MIN_ANNOTATED].reset_index(drop=True)
    rates["audioset_name"] = audioset_names(rates.label)
    k = world_cfg.classes_per_group
    chosen: dict[str, list[str]] = {}
    diff = rates.p_audible - rates.p_visible

    def remaining(frame: pd.DataFrame) -> pd.DataFrame:
        used = {lab for labs in chosen.values() for lab in labs}
        return frame[~frame.label.isin(used)]

    chosen["heard"] = _spread_pick(rates, diff, k)
    chosen["seen"] = _spread_pick(remaining(rates), -diff, k)
    rest = remaining(rates)
    chosen["both"] = _spread_pick(rest, np.minimum(rest.p_audible, rest.p_visible), k)
    rest = remaining(rates)
    rest = rest[rest.audioset_name != ""]
    if world_cfg.unseen_classes:
        chosen["unseen"] = _spread_pick(rest, rest.p_visible - rest.p_audible, world_cfg.unseen_classes)
    else:
        chosen["unseen"] = []

    rows = []
    by_label = rates.set_index("label")
    for group in GROUPS:
        for label in chosen[group]:
            r = by_label.loc[label]
            rows.append(
                {
                    "label": label,
                    "category": r.category,
                    "count": int(r["count"]),
                    "p_audible": float(world_rate(r.p_audible)),
                    "p_visible": float(world_rate(r.p_visible)),
                    "group": group,
                    "audioset_name": r.audioset_name if group == "unseen" else "",
                    "p_audible_real": float(r.p_audible),
                    "p_visible_real": float(r.p_visible),
                    "n_annotated": int(r.n),
                }
            )
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class Signature:
    """A class's parameters in [0, 1]^8 for sound and for sight, and the per-clip jitters."""

    label: str
    category: str
    audio: tuple[float, ...]
    video: tuple[float, ...]
    audio_jitter: float
    video_jitter: float


def category_params(seed: int, category: str, modality: str) -> np.ndarray:
    """The centre of a category's parameters in one modality (hashed)."""
    return rng_for(seed, "category", category, modality).uniform(size=N_PARAMS)


def class_signature(seed: int, label: str, category: str) -> Signature:
    """A class's sound and sight parameters: a seeded hash of its name, pulled toward its
    category's centre by `EAR_SPREAD` / `EYE_SPREAD`."""
    out = {}
    for modality, table in (("audio", EAR_SPREAD), ("video", EYE_SPREAD)):
        spread, jitter = table[category]
        centre = category_params(seed, category, modality)
        own = rng_for(seed, "class", label, modality).uniform(size=N_PARAMS)
        out[modality] = (tuple(float(x) for x in (1 - spread) * centre + spread * own), jitter)
    return Signature(label, category, out["audio"][0], out["video"][0], out["audio"][1], out["video"][1])
