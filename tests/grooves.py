"""Self-made test music with known beats: drum grooves, bass lines, pads, build -> drop tracks.

Why: the beat tracker, the section detector and their benches need audio whose beats and
boundaries are known exactly, without third-party recordings. Everything is numpy and seeded, so
a test sees the same samples every run. ``bench/bench_beat.py`` and ``bench/bench_sections.py``
use it too.
"""

from __future__ import annotations

import numpy as np


def _env(n: int, sr: int, decay_s: float) -> np.ndarray:
    return np.exp(-np.arange(n) / (decay_s * sr)).astype(np.float32)


def kick(sr: int, gain: float = 1.0) -> np.ndarray:
    """A sine sweep 150 -> 45 Hz with a fast decay: the usual electronic kick."""
    n = int(0.35 * sr)
    t = np.arange(n) / sr
    f = 45.0 + 105.0 * np.exp(-t / 0.03)
    phase = 2 * np.pi * np.cumsum(f) / sr
    return (gain * np.sin(phase) * _env(n, sr, 0.12)).astype(np.float32)


def snare(sr: int, rng: np.random.Generator, gain: float = 0.6) -> np.ndarray:
    """Noise plus a 185 Hz body, 0.12 s decay."""
    n = int(0.25 * sr)
    t = np.arange(n) / sr
    noise = rng.standard_normal(n).astype(np.float32)
    noise = np.diff(noise, prepend=0.0).astype(np.float32) * 0.5  # brighter
    body = np.sin(2 * np.pi * 185.0 * t).astype(np.float32)
    return (gain * (0.7 * noise * _env(n, sr, 0.08) + 0.5 * body * _env(n, sr, 0.05))).astype(np.float32)


def hat(sr: int, rng: np.random.Generator, gain: float = 0.25) -> np.ndarray:
    """High-passed noise, 30 ms decay."""
    n = int(0.08 * sr)
    noise = rng.standard_normal(n + 2).astype(np.float32)
    hp = noise[2:] - 2 * noise[1:-1] + noise[:-2]
    return (gain * 0.3 * hp * _env(n, sr, 0.025)).astype(np.float32)


def tone(sr: int, freq: float, dur_s: float, kind: str = "saw", decay_s: float = 0.3,
         gain: float = 0.3) -> np.ndarray:
    """One note: a band-limited-enough saw (8 harmonics) or sine with an exponential decay."""
    n = int(dur_s * sr)
    t = np.arange(n) / sr
    if kind == "sine":
        y = np.sin(2 * np.pi * freq * t)
    else:
        y = sum(np.sin(2 * np.pi * k * freq * t) / k for k in range(1, 9) if k * freq < sr / 2.2)
    return (gain * y * _env(n, sr, decay_s)).astype(np.float32)


def _add(out: np.ndarray, x: np.ndarray, at_s: float, sr: int) -> None:
    i = int(round(at_s * sr))
    if i >= len(out) or i + len(x) <= 0:
        return
    if i < 0:
        x, i = x[-i:], 0
    j = min(len(out), i + len(x))
    out[i:j] += x[: j - i]


def groove(bpm: float, seconds: float, sr: int, *, swing: float = 0.0, fills: bool = False,
           bass: bool = True, four_on_floor: bool = False, seed: int = 0, start_s: float = 0.25,
           gain: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """A drum groove (kick, snare on 2 and 4, eighth hats) at ``bpm`` and its beat times.

    ``swing`` in 0..1/3 delays the off-beat eighths by that fraction of a beat (1/3: triplet
    shuffle); ``fills`` puts a sixteenth-note snare fill on the last beat of every fourth bar;
    ``bass`` adds a bass line on the eighths. Returns (mono float32, beat times in seconds).
    """
    rng = np.random.default_rng(seed)
    out = np.zeros(int(seconds * sr), dtype=np.float32)
    period = 60.0 / bpm
    beats = np.arange(start_s, seconds - 0.05, period)
    k, s, h = kick(sr), snare(sr, rng), hat(sr, rng)
    roots = rng.choice([41.2, 43.65, 49.0, 55.0, 61.74], size=4)  # E1..B1
    for i, b in enumerate(beats):
        bar, pos = divmod(i, 4)
        fill = fills and bar % 4 == 3 and pos == 3
        if four_on_floor or pos in (0, 2) or (pos == 1 and rng.random() < 0.2 and not fill):
            _add(out, k * rng.uniform(0.85, 1.0), b, sr)
        if pos in (1, 3) and not fill:
            _add(out, s * rng.uniform(0.85, 1.0), b, sr)
        if fill:
            for q in range(4):
                _add(out, s * (0.5 + 0.15 * q), b + q * period / 4, sr)
        off = b + period * (0.5 + swing / 2 if swing else 0.5)
        _add(out, h, b, sr)
        _add(out, h * 0.7, off, sr)
        if bass:
            root = roots[bar % 4]
            note = root * (1.5 if pos == 2 else 1.0)
            _add(out, tone(sr, note * 2, period * 0.45, "saw", 0.15, 0.18), b, sr)
            _add(out, tone(sr, note * 2, period * 0.4, "saw", 0.12, 0.12), off, sr)
    return (gain * out / max(1e-6, float(np.max(np.abs(out))))).astype(np.float32), beats


def pad(seconds: float, sr: int, *, seed: int = 0, chord_s: float = 1.0, gain: float = 0.5) -> np.ndarray:
    """Sustained detuned chords with slow swells and a shaker-free texture: a timbre unlike a groove."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    out = np.zeros(n, dtype=np.float32)
    chords = [(261.6, 329.6, 392.0), (220.0, 261.6, 329.6), (174.6, 220.0, 261.6), (196.0, 246.9, 293.7)]
    first = int(rng.integers(len(chords)))
    for k, c0 in enumerate(np.arange(0.0, seconds, chord_s)):  # a fixed progression, looped
        chord = chords[(first + k) % len(chords)]
        i, j = int(c0 * sr), min(n, int((c0 + chord_s) * sr))
        tt = t[i:j] - c0
        swell = 0.75 + 0.25 * np.sin(np.pi * np.clip(tt / chord_s, 0, 1))  # chords swell, never stop
        for f in chord:
            for det in (0.997, 1.003):
                out[i:j] += (np.sin(2 * np.pi * f * det * tt) * swell / 6).astype(np.float32)
    out += 0.01 * rng.standard_normal(n).astype(np.float32)
    return (gain * out / max(1e-6, float(np.max(np.abs(out))))).astype(np.float32)


def build_drop(sr: int, *, bpm: float = 128.0, intro_s: float = 16.0, build_s: float = 8.0,
               drop_s: float = 16.0, seed: int = 0) -> tuple[np.ndarray, float]:
    """An EDM-style track: a groove, a build (kick and bass out, rising snare roll and noise riser),
    then the drop (everything back, louder). Returns (audio, the drop's time in seconds)."""
    rng = np.random.default_rng(seed)
    intro, _ = groove(bpm, intro_s, sr, seed=seed, four_on_floor=True, gain=0.35)
    n_b = int(build_s * sr)
    build = np.zeros(n_b, dtype=np.float32)
    s = snare(sr, rng, gain=0.5)
    period = 60.0 / bpm
    t = 0.0
    while t < build_s - 0.02:  # the roll speeds up: quarters, eighths, sixteenths
        frac = t / build_s
        step = period if frac < 0.5 else period / 2 if frac < 0.75 else period / 4
        _add(build, s * (0.15 + 0.45 * frac), t, sr)
        t += step
    riser = rng.standard_normal(n_b).astype(np.float32)
    riser = np.diff(riser, prepend=0.0).astype(np.float32)
    ramp = (np.arange(n_b) / n_b) ** 2
    build += (0.12 * riser * ramp).astype(np.float32)
    drop, _ = groove(bpm, drop_s, sr, seed=seed + 1, four_on_floor=True, gain=0.9)
    return np.concatenate([intro, build, drop]).astype(np.float32), intro_s + build_s


def _808_kick(sr: int) -> np.ndarray:
    """The TR-808 bass drum: a sine that drops from ~120 to 50 Hz and rings for half a second."""
    n = int(0.6 * sr)
    t = np.arange(n) / sr
    f = 50.0 + 70.0 * np.exp(-t / 0.02)
    return (np.sin(2 * np.pi * np.cumsum(f) / sr) * _env(n, sr, 0.25)).astype(np.float32)


def _808_hat(sr: int, n_s: float = 0.05) -> np.ndarray:
    """The TR-808 hi-hat: six detuned square waves (its metallic oscillator bank), high-passed."""
    n = int(n_s * sr)
    t = np.arange(n + 2) / sr
    x = sum(np.sign(np.sin(2 * np.pi * f * t)) for f in (205.3, 304.4, 369.6, 522.7, 540.0, 800.0))
    hp = x[2:] - 2 * x[1:-1] + x[:-2]
    return (0.1 * hp * _env(n, sr, n_s / 3)).astype(np.float32)


def _808_clap(sr: int, rng: np.random.Generator) -> np.ndarray:
    """The TR-808 hand clap: three quick noise bursts and a tail, band-passed around 1 kHz."""
    n = int(0.2 * sr)
    noise = rng.standard_normal(n + 1).astype(np.float32)
    bp = np.diff(noise).astype(np.float32)
    env = np.zeros(n, np.float32)
    for k in range(3):
        i = int(k * 0.01 * sr)
        env[i:] += _env(n - i, sr, 0.004)
    env += 0.6 * _env(n, sr, 0.06)
    return (0.5 * bp * env).astype(np.float32)


def tr808(bpm: float, seconds: float, sr: int, *, seed: int = 0, start_s: float = 0.25,
          gain: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """A TR-808 house groove (four-on-the-floor boom kick, clap on 2 and 4, off-beat open hats,
    sixteenth closed hats), synthesised the way the 808 makes its sounds. Returns (audio, beats)."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(seconds * sr), dtype=np.float32)
    period = 60.0 / bpm
    beats = np.arange(start_s, seconds - 0.05, period)
    k, c, h, oh = _808_kick(sr), _808_clap(sr, rng), _808_hat(sr), _808_hat(sr, 0.2)
    for i, b in enumerate(beats):
        _add(out, k, b, sr)
        if i % 2 == 1:
            _add(out, c, b, sr)
        _add(out, 0.8 * oh, b + period / 2, sr)
        for q in (0, 1, 3):
            _add(out, h * (0.6 if q else 0.8), b + q * period / 4, sr)
    return (gain * out / max(1e-6, float(np.max(np.abs(out))))).astype(np.float32), beats


def kick_hats_intro(bpm: float, seconds: float, sr: int, *, seed: int = 0, start_s: float = 0.25,
                    gain: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """An EDM intro: a kick on every beat and closed hats on the off-beat eighths, nothing else."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(seconds * sr), dtype=np.float32)
    period = 60.0 / bpm
    beats = np.arange(start_s, seconds - 0.05, period)
    k, h = kick(sr), hat(sr, rng, gain=0.5)
    for b in beats:
        _add(out, k, b, sr)
        _add(out, h, b + period / 2, sr)
    return (gain * out / max(1e-6, float(np.max(np.abs(out))))).astype(np.float32), beats


def claps_in_time(bpm: float, seconds: float, sr: int, *, people: int = 40, seed: int = 0,
                  start_s: float = 0.25, spread_s: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    """A crowd clapping along: ``people`` hand claps per beat, each off by ~``spread_s`` (normal).
    Returns (audio, beats)."""
    from train.negatives import _clap_templates

    rng = np.random.default_rng(seed)
    temps = _clap_templates(sr, rng)
    out = np.zeros(int(seconds * sr), np.float32)
    beats = np.arange(start_s, seconds - 0.1, 60.0 / bpm)
    for b in beats:
        for _ in range(people):
            clap = temps[int(rng.integers(len(temps)))] * float(rng.lognormal(0, 0.4)) / people
            _add(out, clap, b + float(rng.normal(0, spread_s)), sr)
    return (0.3 * out / max(1e-6, float(np.max(np.abs(out))))).astype(np.float32), beats
