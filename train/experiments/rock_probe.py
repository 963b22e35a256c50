"""Does the music gate need rock and metal in its corpus? A probe (issue #25, #31: the shipped gate
opens 7.1 and 15.1 s late on two real recorded metal songs of bench/beatreal.py, Muldjord's
armygeddon and internal_degeneration: `python -m bench.bench_gate_open --match song`).

    python -m train.experiments.rock_probe [--count 12]

Renders rock and metal pieces the way train/showmusic.py renders its kinds (real-sample Hydrogen
kits or GM kits, distorted GM guitars playing palm-muted power-chord riffs, bass, 40 % with a lead;
six drum styles from hard rock to blast beats at 55-220 BPM; the same `_stage`) and prints what the
shipped presence model and its gate say about each. Measured 2026-12-07 (docs/presence.md, "Sixth
step"): every one of 12 items flagged music 100 % of the time from 4 s in (median p 0.77-0.99),
so pieces like these would teach the gate nothing it does not already hear; the real songs' gap
is their recorded sound, not the style.
"""

from __future__ import annotations

import argparse
import shutil

import numpy as np

from train.negatives import _note, render
from train.showmusic import Hit, _stage, kits, play

#: rock and metal drum styles: (tempo range in BPM, what the kick, snare and cymbals do); each one is
#: a fold group, so a fold holds out a whole style
ROCK_STYLES = {
    "hardrock": ((100, 150), "kick on 1 and the and of 3, snare on 2 and 4, eighth hats"),
    "double": ((120, 180), "sixteenth double kick, snare on 2 and 4, ride or china eighths, crash on 1"),
    "thrash": ((160, 210), "skank beat: kick and snare alternate on eighths, crash or ride on each"),
    "blast": ((170, 220), "blast beat counted in half time: kick and snare together on eighths, ride"),
    "punk": ((160, 200), "kick on 1 and 3 with eighth kicks between, snare on 2 and 4, open hats"),
    "doom": ((55, 90), "half time: kick on 1, snare on 3, crash-ride quarters, slow sustained chords"),
}
#: acoustic kits for rock: Hydrogen kits (real samples) and GM's standard, room and power kits
ROCK_KITS = ("kit:ColomboAcousticDrumkit", "kit:BJA_Pacific", "kit:The Black Pearl 1.0",
             "kit:Millo_MultiLayered3", "kit:ForzeeStereo", "kit:rumpf_kit_z01_h2", "gm:0", "gm:8", "gm:16")
_RIFF_SCALE = (0, 1, 3, 5, 7, 8, 10)  # phrygian/aeolian degrees over an E or D pedal


def _rock_events(style: str, bpm: float, seconds: float,
                 seed: int) -> tuple[list[Hit], list[tuple[float, bytes]]]:
    """Drum hits and guitar/bass MIDI (channel 0: rhythm guitar, 1: bass, 2: lead guitar) of a
    rock or metal piece: a 1- or 2-bar riff of palm-muted power chords over a pedal, looped with
    variations, a crash and fill every 4 bars; 40 % with a lead guitar line."""
    rng = np.random.default_rng(seed)
    beat = 60.0 / bpm
    bar = 4 * beat
    nb = int(np.ceil(seconds / bar))
    root = int(rng.choice([28, 26, 31, 33]))  # E1, D1, G1, A1 (the bass); guitars an octave up
    gtr = int(rng.choice([30, 30, 29]))
    ev: list[tuple[float, bytes]] = [(0.0, bytes([0xC0, gtr])),
                                     (0.0, bytes([0xC1, int(rng.choice([33, 34, 35]))])),
                                     (0.0, bytes([0xC2, int(rng.choice([30, 29, 27]))]))]
    sub = 2 if style in ("doom", "hardrock", "punk") else 4  # riff notes per beat
    riff_len = int(rng.choice([1, 2])) * 4 * sub
    riff = []
    for k in range(riff_len):
        if k % sub == 0 or rng.random() < 0.55:
            deg = 0 if rng.random() < 0.55 else int(rng.choice(_RIFF_SCALE))
            riff.append((k, deg, rng.random() < 0.25))  # (step, degree, accented open chord)
    lead = rng.random() < 0.4
    hits: list[Hit] = []
    step = beat / sub
    for b in range(nb):
        t0 = b * bar
        fill = b % 4 == 3 and rng.random() < 0.7
        for q in range(4):
            tq = t0 + q * beat
            eighths = (tq, tq + beat / 2)
            if style == "hardrock":
                if q in (0,) or (q == 2 and rng.random() < 0.6):
                    hits.append(Hit(tq, "kick", 118))
                if q == 2:
                    hits.append(Hit(tq + beat / 2, "kick", 100))
                if q in (1, 3):
                    hits.append(Hit(tq, "snare", 120))
                hits += [Hit(t, "chh", 85) for t in eighths]
            elif style == "double":
                hits += [Hit(tq + i * beat / 4, "kick", 105 + 10 * (i == 0)) for i in range(4)]
                if q in (1, 3):
                    hits.append(Hit(tq, "snare", 122))
                hits += [Hit(t, "ride", 90) for t in eighths]
            elif style == "thrash":
                hits += [Hit(eighths[0], "kick", 115), Hit(eighths[1], "snare", 118)]
                hits += [Hit(t, "crash" if q == 0 and t == eighths[0] else "ride", 88) for t in eighths]
            elif style == "blast":
                for t in eighths:
                    hits += [Hit(t, "kick", 110), Hit(t, "snare", 105), Hit(t, "ride", 80)]
            elif style == "punk":
                hits.append(Hit(tq, "kick" if q % 2 == 0 else "snare", 120))
                hits.append(Hit(tq + beat / 2, "kick", 95))
                hits += [Hit(t, "ohh", 80) for t in eighths]
            else:  # doom
                if q == 0:
                    hits.append(Hit(tq, "kick", 120))
                if q == 2:
                    hits.append(Hit(tq, "snare", 125))
                hits.append(Hit(tq, "ride" if q else "crash", 85))
        if b % 4 == 0:
            hits.append(Hit(t0, "crash", 120))
        if fill:
            hits = [h for h in hits if h.t < t0 + 3 * beat]
            for i in range(8):
                hits.append(Hit(t0 + 3 * beat + i * beat / 8, "tom" if i % 3 else "snare", 100 + 3 * i,
                                tom=2 - i * 3 // 8))
        # the riff: power chords (root, fifth, octave), palm-muted short unless accented
        for k, deg, acc in riff:
            t = t0 + (k % (4 * sub)) * step + (bar if k >= 4 * sub else 0.0)
            if riff_len > 4 * sub and b % 2 == 1:
                continue  # a 2-bar riff covers this bar from the bar before
            if t >= t0 + 2 * bar or t >= seconds:
                continue
            key = root + 12 + deg
            dur = step * (1.8 if acc else 0.55) if style != "doom" else beat * float(rng.choice([1, 2, 4]))
            vel = 118 if acc else 96
            for iv in (0, 7, 12):
                ev += _note(t, dur, key + iv, vel, ch=0)
            ev += _note(t, dur, root + deg, 100, ch=1)
        if lead and b >= 2:
            t = t0
            while t < t0 + bar - 1e-6:
                d = step * float(rng.choice([1, 2, 2, 4]))
                ev += _note(t, d * 0.95, root + 36 + int(rng.choice(_RIFF_SCALE)), 100, ch=2)
                t += d
    return [h for h in hits if h.t < seconds], ev


def rock(style: str, kit: str, seconds: float, sr: int, seed: int) -> np.ndarray:
    """A rock or metal piece (``_rock_events``) at a tempo drawn from the style's range: drums on
    ``kit``, distorted guitars and bass from the GM SoundFont, dry, float32 mono, peak-normalised."""
    rng = np.random.default_rng([seed, 7])
    bpm = float(rng.uniform(*ROCK_STYLES[style][0]))
    hits, ev = _rock_events(style, bpm, seconds, seed)
    d = play(hits, kit, seconds, sr, seed)
    g = render(ev, seconds, sr)
    x = d / (np.abs(d).max() + 1e-9) * float(rng.uniform(0.5, 0.9)) + g / (np.abs(g).max() + 1e-9)
    return (x / (np.abs(x).max() + 1e-9) * 0.9).astype(np.float32)


def _rocks(kind: str, n: int, sr: int, seed: int, seconds: float) -> list[tuple[str, str, np.ndarray]]:
    have = set(kits())
    pool = [k for k in ROCK_KITS if k in have]
    styles = list(ROCK_STYLES)
    out = []
    for i in range(n):
        s = seed * 100_000 + 1000 * 9 + i
        style = styles[i % len(styles)]
        kit = pool[(i // len(styles) + s) % len(pool)]
        out.append((f"rock:{style}", f"rock-{s}-{style}-{kit.split(':')[1].replace(' ', '_')}",
                    _stage(rock(style, kit, seconds, sr, s), sr, s)))
    return out



def main(argv: list[str] | None = None) -> int:
    from bench.bench_gate_open import gate_timeline
    from mer_live.inference.presence import GateConfig, PresenceModel

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=12)
    args = ap.parse_args(argv)
    if not shutil.which("fluidsynth"):
        raise SystemExit("fluidsynth is not installed (Debian: fluidsynth fluid-soundfont-gm)")
    pm = PresenceModel(None, provider="cpu", threads=1)
    rate, n = int(pm.sample_rate), int(pm.window_samples)
    for _group, name, x in _rocks("rock", args.count, rate, 0, 30.0):
        ends = np.arange(n, len(x), rate)
        p = pm.predict(np.stack([x[e - n : e] for e in ends])).reshape(-1)
        flags = gate_timeline(x, rate, pm, GateConfig())
        print(f"{name:45s} p median {np.median(p):.2f}, min {p.min():.2f}; "
              f"flagged from 4 s {flags[40:].mean():.0%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
