"""Sound synthesis of the embedded world: one family of signatures per VGGSound category.

A class's signature is a parameter vector u in [0, 1]^8 (`classes.class_signature`); each family
maps it to physical quantities (pitch, syllable rate, resonance, ...). Every clip jitters the
parameters, the pitch and the timing, so recognising a class is a generalisation problem.

Families (the category decides; ``others`` gets FM chirps):

- animals: harmonic calls with a formant peak, pitch sweeps, trills, syllable rhythm;
- music: notes with an instrument spectrum (tilt, odd/even balance, inharmonicity, attack/decay)
  playing a class motif;
- people: voice-like pulse trains through two formants, syllables or laugh-like bursts;
- vehicle: engine firing harmonics, sirens, horns or reversing beeps;
- sports: rhythmic resonant impacts (all sports classes alike: narrow parameter spread);
- tools: broadband noise, periodically modulated, with a faint whine (alike too);
- nature: filtered noise with slow swells, crackles and rumbles;
- home: mains-like hum with knocks and squeaks.

All functions return float64 arrays of unit RMS (before mixing).
"""

from __future__ import annotations

import numpy as np

TWO_PI = 2.0 * np.pi


def _unit_rms(x: np.ndarray) -> np.ndarray:
    rms = float(np.sqrt(np.mean(x * x)))
    if not np.isfinite(rms) or rms < 1e-12:
        raise ValueError("synthesised a silent or non-finite signal")
    return x / rms


def _lerp(u: float, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(u)


def _loglerp(u: float, lo: float, hi: float) -> float:
    return float(lo * (hi / lo) ** float(u))


def _harmonics(freq: np.ndarray, sr: int, amps: np.ndarray, stretch: float = 0.0) -> np.ndarray:
    """Sum of partials k = 1..len(amps) of an instantaneous frequency track (partials above
    0.45 * sr are dropped). `stretch` > 0 makes them inharmonic (bell-like): k * (1 + stretch k^2)."""
    phase = TWO_PI * np.cumsum(freq) / sr
    top = float(freq.max())
    out = np.zeros_like(freq)
    if stretch:
        for k, a in enumerate(amps, start=1):
            ratio = k * (1.0 + stretch * k * k)
            if ratio * top >= 0.45 * sr:
                break
            out += a * np.sin(ratio * phase)
        return out
    # harmonic partials by the Chebyshev recurrence sin((k+1)p) = 2 cos(p) sin(kp) - sin((k-1)p),
    # in float32 (the phase is wrapped first, so its precision is kept)
    phase = np.mod(phase, TWO_PI).astype(np.float32)
    two_cos = 2.0 * np.cos(phase)
    prev, cur = np.zeros_like(phase), np.sin(phase)
    for k, a in enumerate(amps, start=1):
        if k * top >= 0.45 * sr:
            break
        out += a * cur
        prev, cur = cur, two_cos * cur - prev
    return out


def _noise(rng: np.random.Generator, n: int, sr: int, gain_fn) -> np.ndarray:
    """Gaussian noise with power spectrum ~ gain_fn(f)^2, drawn directly in the frequency domain
    (one inverse FFT)."""
    freqs = np.fft.rfftfreq(n, 1.0 / sr)
    white = rng.standard_normal(2 * len(freqs), dtype=np.float32).view(np.complex64)
    x = np.fft.irfft(white * gain_fn(freqs).astype(np.float32), n=n).astype(np.float64)
    return x / (np.std(x) + 1e-12)


def _sawtooth(freq: np.ndarray, sr: int) -> np.ndarray:
    cycles = np.cumsum(freq) / sr
    return 2.0 * (cycles - np.floor(cycles)) - 1.0


def _spectral_filter(x: np.ndarray, sr: int, gain_fn) -> np.ndarray:
    """Filter by multiplying the spectrum with `gain_fn(freqs)` (zero phase)."""
    spec = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(len(x), 1.0 / sr)
    return np.fft.irfft(spec * gain_fn(freqs), n=len(x))


def _resonance(freqs: np.ndarray, centre: float, octaves: float) -> np.ndarray:
    """A Gaussian band on a log-frequency axis, `octaves` wide (standard deviation)."""
    with np.errstate(divide="ignore"):
        d = np.log2(np.maximum(freqs, 1.0) / centre)
    return np.exp(-0.5 * (d / octaves) ** 2)


def _events(n: int, sr: int, onsets: np.ndarray, attack: float, decay: float, hold: float = 0.0) -> np.ndarray:
    """An envelope: at each onset a linear attack, a hold, then an exponential decay."""
    env = np.zeros(n)
    a = max(int(attack * sr), 1)
    h = int(hold * sr)
    d = int(min(6.0 * decay, 2.0) * sr) + 1
    shape = np.concatenate([np.linspace(0.0, 1.0, a, endpoint=False), np.ones(h), np.exp(-np.arange(d) / (decay * sr))])
    for t in onsets:
        i = int(t * sr)
        if i >= n:
            continue
        j = min(n, i + len(shape))
        env[i:j] = np.maximum(env[i:j], shape[: j - i])
    return env


def _onsets(rng: np.random.Generator, duration: float, period: float, irregular: float) -> np.ndarray:
    """Onset times with mean spacing `period`, timing jitter `irregular` (fraction of a period),
    and a random phase (so clips are not aligned)."""
    t = rng.uniform(0.0, period)
    out = []
    while t < duration:
        out.append(t)
        t += period * (1.0 + irregular * rng.uniform(-1.0, 1.0))
    return np.asarray(out)


# --- families -------------------------------------------------------------------------------


def animal_call(u: np.ndarray, rng: np.random.Generator, n: int, sr: int, pitch: float) -> np.ndarray:
    t_dur = n / sr
    f0 = _loglerp(u[0], 220.0, 3200.0) * pitch
    sweep = (u[1] - 0.5) * 1.6  # octaves over a syllable
    syl = _lerp(u[2], 0.05, 0.40)
    period = syl * _lerp(u[3], 1.3, 3.5)
    peak = _lerp(u[4], 1.0, 5.0)  # harmonic number of the formant peak
    trill = _lerp(u[5], 8.0, 40.0) if u[5] > 0.45 else 0.0
    noise_mix = _lerp(u[6], 0.0, 0.4)
    contour = u[7]  # < 1/3 rising-falling arch, else a straight sweep
    t = np.arange(n) / sr
    onsets = _onsets(rng, t_dur, period, 0.15)
    pos = np.zeros(n)
    for o in onsets:
        i, j = int(o * sr), min(n, int((o + syl) * sr))
        pos[i:j] = np.linspace(0.0, 1.0, j - i, endpoint=False)
    shape = np.sin(np.pi * pos) if contour < 1 / 3 else pos
    freq = f0 * 2.0 ** (sweep * shape)
    k = np.arange(1, 9)
    amps = np.exp(-0.5 * ((k - peak) / 1.2) ** 2) + 0.05
    voiced = _harmonics(freq, sr, amps)
    env = _events(n, sr, onsets, attack=0.01, decay=syl / 4, hold=syl * 0.6)
    if trill:
        env *= 0.55 + 0.45 * np.sin(TWO_PI * trill * t)
    noise = _noise(rng, n, sr, lambda f: _resonance(f, f0 * peak, 0.5))
    return _unit_rms(env * ((1 - noise_mix) * voiced / (np.std(voiced) + 1e-12) + noise_mix * noise))


def music_notes(u: np.ndarray, rng: np.random.Generator, n: int, sr: int, pitch: float) -> np.ndarray:
    t_dur = n / sr
    f0 = _loglerp(u[0], 110.0, 880.0) * pitch
    tilt = _lerp(u[1], 0.4, 2.5)
    even = _lerp(u[2], 0.05, 1.0)
    attack = _loglerp(u[3], 0.004, 0.15)
    plucked = u[4] < 0.5
    rate = _lerp(u[5], 2.0, 7.0)
    stretch = _lerp(u[7], 0.0, 0.004) if u[7] > 0.6 else 0.0
    motif_rng = np.random.default_rng(int(u[6] * 1_000_003))  # the class's motif
    motif = motif_rng.choice([0, 2, 3, 5, 7, 9, 10, 12], size=4)
    k = np.arange(1, 11)
    amps = k ** -tilt * np.where(k % 2 == 0, even, 1.0)
    period = 1.0 / rate
    onsets = _onsets(rng, t_dur, period, 0.05)
    step0 = int(rng.integers(0, 4))
    freq = np.full(n, f0)
    for m, o in enumerate(onsets):
        i = int(o * sr)
        freq[i:] = f0 * 2.0 ** (motif[(m + step0) % 4] / 12.0)
    vib = 1.0 + 0.006 * np.sin(TWO_PI * 5.5 * np.arange(n) / sr) * (u[7] < 0.3)
    tone = _harmonics(freq * vib, sr, amps, stretch)
    decay = _lerp(u[4], 0.08, 0.5) if plucked else 10.0
    env = _events(n, sr, onsets, attack=attack, decay=decay, hold=0.0 if plucked else period * 0.6)
    return _unit_rms(tone * env)


def people_voice(u: np.ndarray, rng: np.random.Generator, n: int, sr: int, pitch: float) -> np.ndarray:
    t_dur = n / sr
    f0 = _loglerp(u[0], 85.0, 340.0) * pitch
    f1 = _lerp(u[1], 300.0, 900.0)
    f2 = _lerp(u[2], 900.0, 2600.0)
    rate = _lerp(u[3], 2.0, 9.0)
    voiced_mix = _lerp(u[4], 0.35, 1.0)
    bursty = u[5] > 0.5  # laugh-like: short bursts with a falling pitch
    intonation = _lerp(u[6], 0.05, 0.6)
    t = np.arange(n) / sr
    onsets = _onsets(rng, t_dur, 1.0 / rate, 0.25)
    syl = (0.35 if bursty else 0.75) / rate
    contour = 2.0 ** (intonation * np.sin(TWO_PI * 0.7 * t + rng.uniform(0, TWO_PI)))
    if bursty:
        pos = np.zeros(n)
        for o in onsets:
            i, j = int(o * sr), min(n, int((o + syl) * sr))
            pos[i:j] = np.linspace(0.0, 1.0, j - i, endpoint=False)
        contour = contour * 2.0 ** (-0.5 * pos)
    source = _sawtooth(f0 * contour, sr)
    source = voiced_mix * source + (1 - voiced_mix) * rng.standard_normal(n) * 0.6
    formants = lambda f: _resonance(f, f1, 0.25) + 0.7 * _resonance(f, f2, 0.2) + 0.02  # noqa: E731
    voice = _spectral_filter(source, sr, formants)
    env = _events(n, sr, onsets, attack=0.02, decay=syl / 3, hold=syl * 0.5)
    return _unit_rms(voice * env)


def vehicle_sound(u: np.ndarray, rng: np.random.Generator, n: int, sr: int, pitch: float) -> np.ndarray:
    t_dur = n / sr
    t = np.arange(n) / sr
    kind = u[7]
    if kind < 0.45:  # engine: firing harmonics, rpm ramp, roughness
        f0 = _loglerp(u[0], 22.0, 110.0) * pitch
        ramp = (u[1] - 0.5) * 1.0 * (t / t_dur)
        freq = f0 * 2.0 ** ramp
        src = _sawtooth(freq, sr) + _lerp(u[4], 0.0, 1.0) * rng.standard_normal(n) * 0.3
        cutoff = _loglerp(u[3], 250.0, 3000.0)
        out = _spectral_filter(src, sr, lambda f: 1.0 / (1.0 + (f / cutoff) ** 4))
        rough = _lerp(u[2], 0.0, 0.8)
        out *= 1.0 - rough * 0.5 * (1 + np.sin(TWO_PI * freq.mean() / 4 * t))
        return _unit_rms(out)
    if kind < 0.7:  # siren: a slow up-and-down sweep
        lo = _loglerp(u[0], 450.0, 1100.0) * pitch
        hi = lo * _lerp(u[1], 1.2, 2.0)
        per = _lerp(u[2], 0.3, 2.5)
        ph = TWO_PI * t / per + rng.uniform(0, TWO_PI)
        sweep = 0.5 + 0.5 * (np.sin(ph) if u[3] < 0.5 else np.sign(np.sin(ph)) * 0.9)
        freq = lo * (hi / lo) ** sweep
        return _unit_rms(_harmonics(freq, sr, np.array([1.0, 0.5, 0.3, 0.15]) * _lerp(u[4], 0.5, 1.0) ** np.arange(4)))
    if kind < 0.85:  # horn: a steady two-tone chord, on and off
        f = _loglerp(u[0], 200.0, 520.0) * pitch
        ratio = (1.25, 1.335, 1.5)[int(u[1] * 2.999)]
        tone = _harmonics(np.full(n, f), sr, 0.7 ** np.arange(6)) + _harmonics(np.full(n, f * ratio), sr, 0.7 ** np.arange(6))
        on = _lerp(u[2], 0.25, 1.0)
        onsets = _onsets(rng, t_dur, on * 1.6, 0.2)
        return _unit_rms(tone * _events(n, sr, onsets, attack=0.01, decay=0.03, hold=on))
    f = _loglerp(u[0], 800.0, 3000.0) * pitch  # beeps
    beep = _lerp(u[1], 0.05, 0.3)
    onsets = _onsets(rng, t_dur, beep + _lerp(u[2], 0.15, 0.8), 0.02)
    return _unit_rms(_harmonics(np.full(n, f), sr, np.array([1.0, 0.2])) * _events(n, sr, onsets, 0.003, 0.01, beep))


def sports_impacts(u: np.ndarray, rng: np.random.Generator, n: int, sr: int, pitch: float) -> np.ndarray:
    t_dur = n / sr
    rate = _lerp(u[0], 1.5, 6.0)
    centre = _loglerp(u[1], 300.0, 4000.0) * pitch
    decay = _loglerp(u[2], 0.01, 0.12)
    width = _lerp(u[3], 0.15, 0.8)
    irregular = _lerp(u[4], 0.0, 0.6)
    ring = _lerp(u[5], 0.0, 0.6)
    onsets = _onsets(rng, t_dur, 1.0 / rate, irregular)
    if rng.random() < _lerp(u[6], 0.0, 0.6):  # double hits, in some clips
        onsets = np.sort(np.concatenate([onsets, onsets + rng.uniform(0.05, 0.15)]))
    env = _events(n, sr, onsets, attack=0.001, decay=decay)
    hits = _spectral_filter(rng.standard_normal(n) * env, sr, lambda f: _resonance(f, centre, width))
    hits /= np.std(hits) + 1e-12
    tone = np.sin(TWO_PI * centre * np.arange(n) / sr) * _events(n, sr, onsets, 0.001, decay * 2)
    return _unit_rms(hits + ring * tone / (np.std(tone) + 1e-12))


def tools_noise(u: np.ndarray, rng: np.random.Generator, n: int, sr: int, pitch: float) -> np.ndarray:
    t = np.arange(n) / sr
    rate = _loglerp(u[0], 4.0, 40.0) * pitch
    depth = _lerp(u[1], 0.3, 1.0)
    duty = _lerp(u[2], 0.2, 0.8)
    centre = _loglerp(u[3], 500.0, 6000.0) * pitch
    width = _lerp(u[4], 0.4, 1.5)
    whine_f = _loglerp(u[5], 300.0, 3000.0) * pitch
    whine = _lerp(u[6], 0.0, 0.4)
    cyc = (t * rate + rng.uniform()) % 1.0
    gate = 1.0 - depth * (cyc > duty)
    body = _noise(rng, n, sr, lambda f: _resonance(f, centre, width)) * gate
    drift = 1.0 + (u[7] - 0.5) * 0.2 * np.sin(TWO_PI * 0.5 * t)
    return _unit_rms(body + whine * np.sqrt(2) * np.sin(TWO_PI * np.cumsum(whine_f * drift) / sr))


def nature_noise(u: np.ndarray, rng: np.random.Generator, n: int, sr: int, pitch: float) -> np.ndarray:
    t_dur = n / sr
    t = np.arange(n) / sr
    centre = _loglerp(u[0], 150.0, 6000.0) * pitch
    width = _lerp(u[1], 0.5, 2.0)
    swell_rate = _loglerp(u[2], 0.2, 3.0)
    swell = _lerp(u[3], 0.0, 0.9)
    crackle_rate = _lerp(u[4], 0.0, 40.0) if u[4] > 0.3 else 0.0
    crackle_amp = _lerp(u[5], 0.5, 3.0)
    rumble = u[6] > 0.6
    bed = _noise(rng, n, sr, lambda f: _resonance(f, centre, width))
    bed *= 1.0 - swell * 0.5 * (1 + np.sin(TWO_PI * swell_rate * t + rng.uniform(0, TWO_PI)))
    out = bed
    if crackle_rate:
        onsets = _onsets(rng, t_dur, 1.0 / crackle_rate, 0.9)
        clicks = rng.standard_normal(n) * _events(n, sr, onsets, 0.0005, 0.004)
        out = out + crackle_amp * clicks / (np.std(clicks) + 1e-12)
    if rumble:
        boom = _noise(rng, n, sr, lambda f: _resonance(f, 60.0, 0.7))
        boom *= _events(n, sr, np.array([rng.uniform(0, t_dur * 0.5)]), 0.05, 0.5)
        out = out + 2.0 * boom / (np.std(boom) + 1e-12)
    return _unit_rms(out)


def home_sounds(u: np.ndarray, rng: np.random.Generator, n: int, sr: int, pitch: float) -> np.ndarray:
    t_dur = n / sr
    hum_f = _loglerp(u[0], 50.0, 400.0) * pitch
    hum_tilt = _lerp(u[1], 0.5, 2.0)
    hum_amt = _lerp(u[2], 0.0, 1.0)
    knock_rate = _loglerp(u[3], 0.7, 6.0)
    knock_f = _loglerp(u[4], 200.0, 3000.0) * pitch
    squeak = u[5] > 0.5
    hum = _harmonics(np.full(n, hum_f), sr, np.arange(1, 9) ** -hum_tilt)
    onsets = _onsets(rng, t_dur, 1.0 / knock_rate, 0.4)
    knocks = _spectral_filter(rng.standard_normal(n) * _events(n, sr, onsets, 0.001, 0.03), sr, lambda f: _resonance(f, knock_f, 0.4))
    out = hum_amt * hum / (np.std(hum) + 1e-12) + knocks / (np.std(knocks) + 1e-12)
    if squeak:
        f = _loglerp(u[6], 600.0, 2500.0) * pitch
        start = rng.uniform(0, t_dur * 0.5)
        length = _lerp(u[7], 0.2, 0.8)
        freq = f * 2.0 ** (0.5 * np.clip((np.arange(n) / sr - start) / length, 0, 1))
        sq = _harmonics(freq, sr, np.array([1.0, 0.4, 0.2])) * _events(n, sr, np.array([start]), 0.02, 0.05, length)
        out = out + sq / (np.std(sq) + 1e-12)
    return _unit_rms(out)


def other_chirps(u: np.ndarray, rng: np.random.Generator, n: int, sr: int, pitch: float) -> np.ndarray:
    t_dur = n / sr
    f_start = _loglerp(u[0], 300.0, 4000.0) * pitch
    extent = (u[1] - 0.5) * 3.0  # octaves
    dur = _lerp(u[2], 0.08, 0.6)
    period = dur * _lerp(u[3], 1.1, 3.0)
    noise_mix = _lerp(u[4], 0.0, 0.5)
    n_harm = 1 + int(u[5] * 5)
    onsets = _onsets(rng, t_dur, period, 0.1)
    pos = np.zeros(n)
    for o in onsets:
        i, j = int(o * sr), min(n, int((o + dur) * sr))
        pos[i:j] = np.linspace(0.0, 1.0, j - i, endpoint=False)
    freq = f_start * 2.0 ** (extent * pos)
    tone = _harmonics(freq, sr, 0.6 ** np.arange(n_harm))
    env = _events(n, sr, onsets, 0.005, dur / 4, dur * 0.7)
    noise = rng.standard_normal(n)
    return _unit_rms(env * ((1 - noise_mix) * tone / (np.std(tone) + 1e-12) + noise_mix * noise))


#: Parameters that make a discrete choice (a kind of sound, a motif, a yes/no feature): they
#: come from the class alone, without the clip's jitter, so a class keeps its kind of sound.
DISCRETE = {
    "animals": (5, 7),
    "music": (4, 6, 7),
    "people": (5,),
    "vehicle": (1, 3, 7),
    "sports": (),
    "tools": (),
    "nature": (4, 6),
    "home": (5,),
    "others": (5,),
}

FAMILIES = {
    "animals": animal_call,
    "music": music_notes,
    "people": people_voice,
    "vehicle": vehicle_sound,
    "sports": sports_impacts,
    "tools": tools_noise,
    "nature": nature_noise,
    "home": home_sounds,
    "others": other_chirps,
}


def signature_sound(category: str, u: np.ndarray, rng: np.random.Generator, n: int, sr: int, pitch: float = 1.0) -> np.ndarray:
    """One rendition of a class signature (unit RMS)."""
    if category not in FAMILIES:
        raise KeyError(f"no sound family for category {category!r}")
    return FAMILIES[category](np.clip(u, 0.0, 1.0), rng, n, sr, pitch)


def background(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Shared by every class: coloured noise (pink to brown), at times a mains hum, slow level
    drift. Unit RMS. Carries no information about the class."""
    slope = rng.uniform(0.5, 1.0)  # power ~ 1/f^(2*slope)
    freqs = np.fft.rfftfreq(n, 1.0 / sr)
    spec = rng.standard_normal(2 * len(freqs), dtype=np.float32).view(np.complex64)
    spec *= (1.0 / np.maximum(freqs, 20.0) ** slope).astype(np.float32)
    spec[0] = 0.0
    if rng.random() < 0.3:  # mains hum: lines at 50 or 60 Hz and two harmonics, random phases
        mains = float(rng.choice([50.0, 60.0]))
        line = np.abs(spec).mean() * rng.uniform(20.0, 80.0)
        for k, amp in ((1, 1.0), (2, 0.5), (3, 0.3)):
            spec[int(round(k * mains * n / sr))] = line * amp * np.exp(1j * rng.uniform(0, TWO_PI))
    bed = np.fft.irfft(spec, n=n).astype(np.float64)
    knots = 1.0 + 0.3 * rng.uniform(-1.0, 1.0, 4)  # slow level drift
    bed *= np.interp(np.arange(n), np.linspace(0, n, 4), knots)
    return _unit_rms(bed)
