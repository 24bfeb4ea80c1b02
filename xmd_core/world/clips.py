"""One clip of the embedded world: its draw (deterministic from world seed, class, split and
index) and its media (audio samples and video frames) rendered from the draw.

The draw holds everything stored in the clip table (`audible`, `visible`, SNR, gain, pitch
shift, distractor, scene, bystander; the venue heard and seen (`context`) and the recording
chain (`domain`)) and a `media_seed` from which the rendering takes the rest (signature jitter,
timing, position, noise), so the same draw always renders the same media.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from ..config import WorldConfig
from ..data import clip_name
from . import audio, context, domain, video
from .classes import EYE_SPREAD, N_PARAMS, Signature, category_params, class_signature, rng_for, youtube_like_id

#: SNR (dB) of the signature over the background in audible clips.
SNR_DB = (0.0, 18.0)
#: Overall level change (dB) of a clip.
GAIN_DB = (-6.0, 0.0)
#: Pitch shift (semitones) of a clip's signature.
PITCH_SEMITONES = 1.0
#: Probability that an inaudible clip carries a faint sound of another class, and its level (dB).
DISTRACTOR_P = 0.25
DISTRACTOR_DB = (-24.0, -12.0)
#: RMS of the written audio before the gain.
LEVEL_RMS = 0.2


@dataclass(frozen=True)
class ClipDraw:
    clip: str
    ytid: str
    start: int
    label: str
    category: str
    group: str
    split: str
    index: int
    audible: bool
    visible: bool
    snr_db: float  # NaN when not audible
    gain_db: float
    pitch_semitones: float
    distractor: str  # another class heard faintly in an inaudible clip, or ''
    distractor_db: float  # NaN when none
    scene: str  # the kind of background the video shows: its venue's
    bystander: bool
    venue: str  # where the clip happens: the scene shown, and (in the wild) the ambience heard
    audio_venue: str  # the ambience heard: the venue, except in curated clean audio (unrelated to the class)
    domain: str  # recording domain of the audio: "clean" (curated pre-training audio) or "wild"
    context_db: float  # level of the ambience over the background noise
    reverb_s: float  # T60 of the room, NaN when dry
    lowpass_hz: float  # NaN when clean
    highpass_hz: float  # NaN when clean
    noise_db: float  # sensor noise relative to the clip, NaN when clean
    media_seed: int

    def row(self) -> dict:
        return asdict(self)


def draw_clip(
    world: WorldConfig,
    label: str,
    category: str,
    group: str,
    p_audible: float,
    p_visible: float,
    split: str,
    index: int,
    other_labels: tuple[str, ...] = (),
) -> ClipDraw:
    """The draw of clip `index` of `split` for one class: a function of (seed, class, split,
    index) only. `other_labels`: the classes a faint distractor sound may come from."""
    rng = rng_for(world.seed, "clip", label, split, index)
    audible = bool(rng.random() < p_audible)
    visible = bool(rng.random() < p_visible)
    start = int(rng.integers(0, 300))
    snr_db = float(rng.uniform(*SNR_DB)) if audible else math.nan
    gain_db = float(rng.uniform(*GAIN_DB))
    pitch = float(rng.uniform(-PITCH_SEMITONES, PITCH_SEMITONES))
    distractor, distractor_db = "", math.nan
    others = [o for o in other_labels if o != label]
    if not audible and others and rng.random() < DISTRACTOR_P:
        distractor = others[int(rng.integers(len(others)))]
        distractor_db = float(rng.uniform(*DISTRACTOR_DB))
    bystander = category != "people" and bool(rng.random() < video.BYSTANDER_P)
    media_seed = int(rng.integers(0, 2**63 - 1))
    ytid = youtube_like_id(world.seed, label, split, index)
    venue, audio_venue, recording = draw_context(world, label, split, index)
    return ClipDraw(
        clip=clip_name(ytid, start),
        ytid=ytid,
        start=start,
        label=label,
        category=category,
        group=group,
        split=split,
        index=index,
        audible=audible,
        visible=visible,
        snr_db=snr_db,
        gain_db=gain_db,
        pitch_semitones=pitch,
        distractor=distractor,
        distractor_db=distractor_db,
        scene=context.scene_style(venue)[0],
        bystander=bystander,
        venue=venue,
        audio_venue=audio_venue,
        domain=recording.domain,
        context_db=recording.context_db,
        reverb_s=recording.reverb_s,
        lowpass_hz=recording.lowpass_hz,
        highpass_hz=recording.highpass_hz,
        noise_db=recording.noise_db,
        media_seed=media_seed,
    )


def draw_context(world: WorldConfig, label: str, split: str, index: int) -> tuple[str, str, domain.Recording]:
    """(venue, venue heard, recording chain) of one clip, from a stream of its own (so switching
    the mechanisms off leaves every other draw of the clip as it was).

    With `domain_shift`, a pre-training clip is web video (recorded in the wild, share
    `domain.WEB_VIDEO_SHARE`) or curated audio: clean, with a faint ambience unrelated to the
    class, dry. Without `context` every venue is drawn uniformly."""
    rng = rng_for(world.seed, "context", label, split, index)
    venue = context.draw_venue(rng, context.venue_mixture(world.seed, label) if world.context else None)
    curated = split == "pretrain" and world.domain_shift and bool(rng.random() >= domain.WEB_VIDEO_SHARE)
    heard = context.draw_venue(rng, None) if curated else venue
    recording = domain.draw_recording(rng, "clean" if curated or not world.domain_shift else "wild")
    return venue, heard, recording


def signatures(world: WorldConfig, classes) -> dict[str, Signature]:
    """Signature of every class of a class table (label, category)."""
    return {lab: class_signature(world.seed, lab, cat) for lab, cat in zip(classes.label, classes.category)}


def _people_cue(world: WorldConfig, rng: np.random.Generator) -> np.ndarray:
    """A random person cue within the people category's visual range (no class in it)."""
    spread, _ = EYE_SPREAD["people"]
    centre = category_params(world.seed, "people", "video")
    return (1 - spread) * centre + spread * rng.uniform(size=N_PARAMS)


def n_samples(world: WorldConfig) -> int:
    return int(round(world.duration_s * world.audio_rate))


def n_frames(world: WorldConfig) -> int:
    return max(int(round(world.duration_s * world.fps)), 1)


def jittered(values: tuple[float, ...], jitter: float, keep: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """A clip's parameters: the class's plus U(-jitter, jitter), except the indices in `keep`."""
    u = np.asarray(values) + rng.uniform(-jitter, jitter, N_PARAMS)
    u[list(keep)] = np.asarray(values)[list(keep)]
    return u


def _recording(draw: ClipDraw) -> domain.Recording:
    return domain.Recording(draw.domain, draw.context_db, draw.reverb_s, draw.lowpass_hz, draw.highpass_hz, draw.noise_db)


def render_clip(world: WorldConfig, draw: ClipDraw, sigs: dict[str, Signature]) -> tuple[np.ndarray, np.ndarray]:
    """(frames uint8 (T, H, W, 3), audio float32 mono in [-1, 1]) of one draw."""
    rng = np.random.default_rng(draw.media_seed)
    sig = sigs[draw.label]
    n, sr = n_samples(world), world.audio_rate
    mix = audio.background(rng, n, sr)
    if draw.audible:
        u = jittered(sig.audio, sig.audio_jitter, audio.DISCRETE[draw.category], rng)
        sound = audio.signature_sound(draw.category, u, rng, n, sr, 2.0 ** (draw.pitch_semitones / 12.0))
        mix = mix + sound * 10.0 ** (draw.snr_db / 20.0)
    elif draw.distractor:
        other = sigs[draw.distractor]
        u = jittered(other.audio, other.audio_jitter, audio.DISCRETE[other.category], rng)
        sound = audio.signature_sound(other.category, u, rng, n, sr, 2.0 ** (draw.pitch_semitones / 12.0))
        mix = mix + sound * 10.0 ** (draw.distractor_db / 20.0)
    mix = mix + context.ambience(draw.audio_venue, rng, n, sr) * 10.0 ** (draw.context_db / 20.0)
    mix = domain.record(mix, _recording(draw), rng, sr)
    mix = mix * (LEVEL_RMS * 10.0 ** (draw.gain_db / 20.0) / np.sqrt(np.mean(mix * mix)))
    samples = np.clip(mix, -0.99, 0.99).astype(np.float32)

    vu = jittered(sig.video, sig.video_jitter, video.DISCRETE, rng)
    object_u = person_cue = None
    if draw.category == "people":
        person_cue = vu if draw.visible else _people_cue(world, rng)
    elif draw.visible:
        object_u = vu
    bystander_cue = _people_cue(world, rng) if draw.bystander else None
    frames = video.render_frames(
        rng,
        n_frames(world),
        float(world.fps),
        world.height,
        world.width,
        video.SCENES.index(draw.scene),
        context.scene_style(draw.venue)[1],
        object_u,
        person_cue,
        bystander_cue,
    )
    return frames, samples
