"""The bundled example: a piece synthesised here in numpy that goes from calm to energetic.

No third-party audio is shipped: ``demo_audio()`` renders it on the fly, deterministically (fixed
seed), so ``mer-live --demo`` and the tests always hear the same thing. ``examples/`` can write it
to a file, e.g. ``soundfile.write("demo.wav", demo_audio(), 22050)``.

Form (fractions of the length): 0-45 % calm (soft, slow, sustained major chords, quiet);
45-60 % build-up (pulse, hi-hat and volume rise); 60-100 % energetic (fast drums: kick, snare,
16th-note hi-hats at 150 BPM, driving bass, a bright distorted lead, loud).
"""

from __future__ import annotations

import numpy as np

SEED = 20251125
_A4 = 440.0


def _hz(midi: float) -> float:
    return _A4 * 2.0 ** ((midi - 69) / 12.0)


def _add(out: np.ndarray, start: int, sig: np.ndarray) -> None:
    """Mix ``sig`` into ``out`` at ``start``, clipped at the end."""
    if start >= out.shape[0] or start < 0:
        return
    n = min(sig.shape[0], out.shape[0] - start)
    out[start : start + n] += sig[:n]


def _env(n: int, sr: int, attack: float, release: float) -> np.ndarray:
    """Linear attack, sustain, linear release over ``n`` samples."""
    e = np.ones(n)
    a = min(n, max(1, int(attack * sr)))
    r = min(n - a, max(1, int(release * sr)))
    e[:a] = np.linspace(0.0, 1.0, a, endpoint=False)
    if r > 0:
        e[n - r :] *= np.linspace(1.0, 0.0, r)
    return e


def _pad_chord(notes: list[int], dur: float, sr: int) -> np.ndarray:
    """A soft sustained chord: sines with a little 2nd harmonic and slow vibrato, slow swell."""
    n = int(dur * sr)
    t = np.arange(n) / sr
    sig = np.zeros(n)
    for i, m in enumerate(notes):
        f = _hz(m) * (1.0 + 0.002 * np.sin(2 * np.pi * (0.3 + 0.07 * i) * t))
        ph = 2 * np.pi * np.cumsum(f) / sr
        sig += np.sin(ph) + 0.15 * np.sin(2 * ph)
    return sig / len(notes) * _env(n, sr, attack=dur * 0.35, release=dur * 0.4)


def _kick(sr: int) -> np.ndarray:
    n = int(0.25 * sr)
    t = np.arange(n) / sr
    f = 50.0 + 110.0 * np.exp(-t * 30.0)
    return np.tanh(2.5 * np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t * 12.0))


def _snare(sr: int, rng: np.random.Generator) -> np.ndarray:
    n = int(0.18 * sr)
    t = np.arange(n) / sr
    noise = rng.standard_normal(n)
    noise = np.diff(noise, prepend=0.0)  # brighter
    tone = np.sin(2 * np.pi * 190.0 * t)
    return (0.55 * noise * np.exp(-t * 22.0) + 0.5 * tone * np.exp(-t * 30.0)).clip(-1.5, 1.5)


def _hat(sr: int, rng: np.random.Generator, length: float = 0.04) -> np.ndarray:
    n = int(length * sr)
    t = np.arange(n) / sr
    noise = rng.standard_normal(n)
    hp = np.diff(np.diff(noise, prepend=0.0), prepend=0.0)  # crude high-pass: hiss only
    return 0.25 * hp * np.exp(-t * 90.0)


def _saw(freq: float, n: int, sr: int, harmonics: int = 12) -> np.ndarray:
    """Band-limited sawtooth (additive, harmonics kept below Nyquist)."""
    t = np.arange(n) / sr
    s = np.zeros(n)
    for k in range(1, harmonics + 1):
        if k * freq >= sr / 2 * 0.9:
            break
        s += np.sin(2 * np.pi * k * freq * t) / k
    return s * (2 / np.pi)


def demo_audio(sr: int = 22050, seconds: float = 40.0) -> np.ndarray:
    """Render the demo piece: mono float32 ``[samples]`` in [-1, 1] at ``sr``, calm -> energetic.

    Deterministic for a given ``sr`` and ``seconds`` (fixed seed). The calm part sits around
    -35 dBFS RMS, the energetic part around -9 dBFS; peaks stay below -0.4 dBFS.
    """
    if sr < 8000:
        raise ValueError(f"demo_audio needs sr >= 8000, got {sr}")
    if not seconds >= 4.0:
        raise ValueError(f"demo_audio needs at least 4 seconds, got {seconds}")
    rng = np.random.default_rng(SEED)
    n = int(round(seconds * sr))
    calm = np.zeros(n)
    drums = np.zeros(n)
    bass = np.zeros(n)
    lead = np.zeros(n)
    t_build, t_loud = 0.45 * seconds, 0.60 * seconds

    # Calm: I - vi - IV - V in C major, 4 s per chord, overlapping swells; continues quietly under the build.
    prog = [[60, 64, 67, 72], [57, 60, 64, 69], [53, 57, 60, 65], [55, 59, 62, 67]]
    chord_s = 4.0
    k = 0
    while k * chord_s < t_loud:
        _add(calm, int(k * chord_s * sr), _pad_chord(prog[k % 4], chord_s * 1.3, sr))
        k += 1
    calm *= 0.06

    # Drums and bass from the build-up on; 150 BPM, 16th-note grid.
    bpm = 150.0
    step = 60.0 / bpm / 4
    kick, hat_short = _kick(sr), None
    bass_roots = [36, 33, 29, 31]  # C, A, F, G (an octave below the chords)
    i = int(np.ceil(t_build / step))
    while i * step < seconds:
        ts = i * step
        pos = int(ts * sr)
        loud = ts >= t_loud
        beat16 = i % 16
        # build-up: hats on 8ths, then everything on the drop
        if loud or beat16 % 2 == 0:
            hat_short = _hat(sr, rng, 0.03 if beat16 % 2 else 0.05)
            _add(drums, pos, hat_short * (1.0 if loud else 0.5))
        if loud:
            if beat16 in (0, 4, 8, 10, 12):
                _add(drums, pos, kick)
            if beat16 in (4, 12):
                _add(drums, pos, _snare(sr, rng))
            if beat16 % 2 == 0:
                root = bass_roots[int(ts // chord_s) % 4]
                note = root + (12 if beat16 % 4 == 2 else 0)
                m = int(step * 2 * sr * 0.9)
                _add(bass, pos, _saw(_hz(note), m, sr, 8) * _env(m, sr, 0.005, 0.03))
        elif beat16 % 4 == 0:
            _add(drums, pos, kick * 0.35)  # soft pulse while building
        i += 1

    # Lead: bright, distorted, fast arpeggio over the chords in the energetic part.
    arp = [0, 4, 7, 12, 7, 4, 12, 16]
    j = int(np.ceil(t_loud / (step * 2)))
    while j * step * 2 < seconds:
        ts = j * step * 2
        root = [72, 69, 65, 67][int(ts // chord_s) % 4]
        m = int(step * 2 * sr * 0.95)
        note = _saw(_hz(root + arp[j % len(arp)]), m, sr, 20) * _env(m, sr, 0.003, 0.02)
        _add(lead, int(ts * sr), np.tanh(3.0 * note))
        j += 1

    # Level automation: the build-up rises from quiet to loud.
    t = np.arange(n) / sr
    ramp = np.clip((t - t_build) / (t_loud - t_build), 0.0, 1.0)
    drums *= 0.15 + 0.85 * ramp
    mix = calm + 0.55 * drums + 0.35 * bass + 0.22 * lead
    mix = 0.95 * np.tanh(1.2 * mix)  # gentle bus saturation; peaks stay below 0.95 (-0.45 dBFS)
    fade = int(0.05 * sr)
    mix[:fade] *= np.linspace(0.0, 1.0, fade)
    mix[-fade:] *= np.linspace(1.0, 0.0, fade)
    return mix.astype(np.float32)
