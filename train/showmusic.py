"""Every kind of show music, made on this machine: the presence model's music-kinds corpus.

The presence model learnt "music" from 30-s mixes of commercial recordings and piano renders and
judged a drum machine alone, a kick-and-hats intro or a solo trumpet "no music" (issue #25). This
module builds the music it was missing from installed packages only (no downloads at run time),
deterministic for a seed, every item with a GROUP (a kit, an instrument, a package) so
cross-validation holds out whole kits, instruments and packages:

* ``groove-kit``: drum grooves of many styles (rock, house, techno, breakbeat, funk, trap hi-hats,
  double kick, shuffle, jazz ride, bossa, one drop, drum'n'bass, half time, afro 12/8, kick + snare
  without hats, kick + hats) sequenced in numpy on Debian's Hydrogen drum kits (real sampled kits:
  ``/usr/share/hydrogen/data/drumkits/*/drumkit.xml``, package hydrogen-drumkits); group ``kit:NAME``.
* ``groove-gm``: the same grooves on the General MIDI kits of the GM SoundFont (standard, room,
  power, electronic, TR-808, jazz, brush, orchestra: bank 128 on MIDI channel 10), FluidSynth;
  group ``gm:PROGRAM``.
* ``groove-synth``: the same grooves on analog-style drum machines synthesised here (808/909-like
  sine-sweep kicks, noise snares and claps, metallic hats), numpy; group ``synth:N``.
* ``edm-intro``: a 16-bar kick-and-hats intro (hats on the off-beats, sometimes 16ths, a clap
  joining late), on a GM, Hydrogen electronic or synth kit; grouped by its kit.
* ``edm``: an arrangement from MIDI written here (FluidSynth, GM): intro (kick + hats), bass in,
  breakdown (pads and lead, no drums), build (snare roll), drop; grouped by its kit.
* ``solo``: one GM instrument playing phrases (guitars, bass, strings and violin, brass and
  trumpet, reeds and flute, choir "aahs", organ drones, piano, mallets, synth lead): motifs and
  their variations, a few public-domain tunes, breaths between phrases; group ``solo:INSTRUMENT``.
* ``pad``: sustained-chord music (issue #25, fifth step): GM pads, organs, string ensembles,
  choirs, numpy synth pads (detuned saws) and additive ones (soft sines, few partials) playing
  slow chord progressions of 3-5 notes (chords held 2-6 s, soft or loud, with or without a slow
  bass), drones under slowly moving upper voices, and ambient pieces (overlapping swells, a
  sparse bell); grouped by family (``pad:gm-organ`` ...), so a fold holds out a whole family.
  Every chord has 3+ notes and the chords change: a tuning is one or two notes, re-struck.
* ``recorded``: 30-s excerpts of real recorded game music from Debian's music packages
  (singularity-music CC-BY-SA, wesnoth-1.16-music GPL-2, hyperrogue-music GPL-2+, nexuiz-music
  GPL-2+, asc-music GPL-2+, drascula-music free redistribution); group ``pkg:PACKAGE``. Only
  installed packages are used; the audio is never copied into the repository.

Every item goes through a stage: a random level, sometimes a room, a venue's noise floor well
below it (``negatives.room``, ``negatives.room_tone``).

Public API (the show benchmark imports it)::

    from train import showmusic
    showmusic.KINDS                                   # the kinds above
    showmusic.items("groove-gm", sr=16000, seed=0)    # -> [(group, name, audio float32 mono at sr)]
    showmusic.corpus(sr=16000, seed=0)                # -> [MusicItem] of every kind (DEFAULT_COUNTS)
    showmusic.groove("gm:25", "house", 125, 8.0, 16000, seed=1)   # one dry groove (tests)

A kind whose tool or package is missing is skipped with a warning (``items`` returns fewer or no
items); ``available()`` says what this machine can make.
"""

from __future__ import annotations

import functools
import logging
import shutil
import subprocess
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from .negatives import _note, _resample, at_db, gm_soundfont, place, render, room, room_tone

log = logging.getLogger(__name__)

#: bump when a generator changes: the presence training's cache of the corpus is keyed by it
VERSION = 1

KINDS = ("groove-kit", "groove-gm", "groove-synth", "edm-intro", "edm", "solo", "recorded", "pad", "intro")

#: the kinds of VERSION 1's corpus: their cache folder and folds stay as they were; a kind added
#: later is cached beside them under its own version (``KIND_VERSION``) and folded on its own
BASE_KINDS = KINDS[:7]
KIND_VERSION = {"pad": 2, "intro": 1}

#: items per kind in the default corpus (30 s each)
DEFAULT_COUNTS = {
    "groove-kit": 56,
    "groove-gm": 40,
    "groove-synth": 18,
    "edm-intro": 24,
    "edm": 24,
    "solo": 66,
    "recorded": 72,
    "pad": 56,
    "intro": 0,  # not in the shipped gate's corpus: `--intro` adds INTRO_COUNT (docs/presence.md, Sixth step)
}
INTRO_COUNT = 63  #: every track of INTRO_PACKAGES but the remakes


def counts(intro: bool = False) -> dict[str, int]:
    """Items per kind of a run: DEFAULT_COUNTS, with the ``intro`` kind when asked (``--intro``)."""
    return {**DEFAULT_COUNTS, "intro": INTRO_COUNT if intro else 0}

HYDROGEN_DIR = Path("/usr/share/hydrogen/data/drumkits")

# ---------------------------------------------------------------- grooves

#: style -> (steps per bar, (bpm lo, bpm hi), {role: pattern}); 'X' accent, 'x' hit, 'g' ghost,
#: 'r' a 32nd-note roll (trap hats); 16 steps = 16ths of 4/4, 12 = triplet 8ths of 12/8
STYLES: dict[str, tuple[int, tuple[float, float], dict[str, str]]] = {
    "rock": (
        16,
        (90, 140),
        {"kick": "X.......x.x.....", "snare": "....X.......X...", "chh": "x.x.x.x.x.x.x.x."},
    ),
    "rock_ride": (
        16,
        (100, 150),
        {"kick": "X.....x.X.......", "snare": "....X.......X...", "ride": "x.x.x.x.x.x.x.x."},
    ),
    "house": (
        16,
        (118, 128),
        {
            "kick": "X...X...X...X...",
            "clap": "....x.......x...",
            "ohh": "..x...x...x...x.",
            "chh": "g.g.g.g.g.g.g.g.",
        },
    ),
    "techno": (
        16,
        (125, 140),
        {"kick": "X...X...X...X...", "chh": "xgxgxgxgxgxgxgxg", "rim": "...x..x....x..x."},
    ),
    "breakbeat": (
        16,
        (85, 140),
        {"kick": "X.X.......X.....", "snare": "....X..g.g..X..g", "chh": "x.x.x.x.x.x.x.x."},
    ),
    "funk": (
        16,
        (90, 115),
        {"kick": "X..x......x..x..", "snare": "....X..g.g..X...", "chh": "xgxgxgxgxgxgxgxg"},
    ),
    "trap": (
        16,
        (130, 150),
        {"kick": "X......x..x.....", "clap": "........X.......", "chh": "xxxxrxxxxxxxrrxx"},
    ),
    "double_kick": (
        16,
        (150, 190),
        {"kick": "xxxxxxxxxxxxxxxx", "snare": "....X.......X...", "ride": "x...x...x...x..."},
    ),
    "kick_snare": (16, (80, 130), {"kick": "X.......X.x.....", "snare": "....X.......X..."}),
    "kick_hats": (16, (120, 132), {"kick": "X...X...X...X...", "chh": "..x...x...x...x."}),
    "shuffle": (12, (80, 125), {"kick": "X.....x.....", "snare": "...X.....X..", "chh": "x.xx.xx.xx.x"}),
    "jazz_ride": (
        12,
        (110, 180),
        {"ride": "x..x.xx..x.x", "chh": "...x.....x..", "kick": "g.....g.....", "snare": "....g......g"},
    ),
    "bossa": (
        16,
        (120, 150),
        {"kick": "X..xX..xX..xX..x", "rim": "x..x..x...x..x..", "chh": "gggggggggggggggg"},
    ),
    "one_drop": (
        16,
        (70, 82),
        {"kick": "........X.......", "rim": "........X.......", "chh": "x.x.x.x.x.x.x.x."},
    ),
    "dnb": (
        16,
        (165, 176),
        {"kick": "X.........X.....", "snare": "....X.......X...", "chh": "x.x.x.x.x.x.x.x."},
    ),
    "halftime": (
        16,
        (130, 150),
        {"kick": "X.....x...x.....", "snare": "........X.......", "chh": "x.x.x.x.x.x.x.x."},
    ),
    "afro": (
        12,
        (100, 130),
        {"kick": "x.....x..x..", "snare": "..x..x....x.", "chh": "x.xx.xx.xx.x", "perc": "x.x.xx.x.x.x"},
    ),
}
ACOUSTIC_STYLES = (
    "rock",
    "rock_ride",
    "breakbeat",
    "funk",
    "double_kick",
    "kick_snare",
    "shuffle",
    "jazz_ride",
    "bossa",
    "one_drop",
    "dnb",
    "halftime",
    "house",
    "afro",
)
ELECTRONIC_STYLES = (
    "house",
    "techno",
    "trap",
    "breakbeat",
    "kick_snare",
    "kick_hats",
    "dnb",
    "halftime",
    "double_kick",
    "funk",
)
HAND_STYLES = ("afro", "bossa", "shuffle", "funk", "kick_snare")
_VEL = {"X": 118, "x": 92, "g": 45, "r": 80}
ROLES = ("kick", "snare", "chh", "ohh", "clap", "rim", "ride", "crash", "tom", "perc")

#: GM percussion keys for each role (channel 10)
GM_KEYS = {
    "kick": 36,
    "snare": 38,
    "chh": 42,
    "ohh": 46,
    "clap": 39,
    "rim": 37,
    "ride": 51,
    "crash": 49,
    "tom": 45,
    "perc": 56,
}
#: GM drum kits (bank 128 program) in the GM SoundFont
GM_KITS = {
    0: "standard",
    8: "room",
    16: "power",
    24: "electronic",
    25: "tr-808",
    32: "jazz",
    40: "brush",
    48: "orchestra",
}
GM_ELECTRONIC = (24, 25)


@dataclass(frozen=True)
class Hit:
    t: float  #: seconds
    role: str
    vel: int  #: 1..127
    tom: int = 0  #: which tom in a fill (0 low .. 2 high)


def pattern_hits(
    style: str,
    bpm: float,
    seconds: float,
    seed: int,
    human: bool = True,
    fills: bool = True,
    roles: Sequence[str] | None = None,
) -> list[Hit]:
    """A steady groove of ``style`` at ``bpm`` for ``seconds``: the pattern every bar, a crash on
    the first beat of every 8 bars, a tom fill closing every 4th bar (when ``fills``), swing and
    timing/velocity humanisation drawn from ``seed``; only ``roles`` when given."""
    steps, _, pat = STYLES[style]
    rng = np.random.default_rng(seed)
    beat = 60.0 / bpm
    step = beat * 4 / 16 if steps == 16 else beat / 3
    bar = step * steps
    swing = rng.uniform(0.0, 0.18) if steps == 16 and style in ("funk", "house", "bossa", "trap") else 0.0
    jit = rng.uniform(0.002, 0.008) if human else 0.0
    hits: list[Hit] = []
    nbars = int(np.ceil(seconds / bar)) + 1
    for b in range(nbars):
        t0 = b * bar
        fill = fills and "snare" in pat and b % 4 == 3 and style not in ("kick_hats", "house", "techno")
        for role, p in pat.items():
            if roles is not None and role not in roles:
                continue
            for s, c in enumerate(p):
                if c == "." or (fill and s >= steps - steps // 4 and role != "kick"):
                    continue
                t = t0 + s * step + (swing * step if s % 2 else 0.0)
                v = _VEL[c]
                n = 3 if c == "r" else 1
                for k in range(n):
                    tt = t + k * step / n + (rng.normal(0, jit) if jit else 0.0)
                    vv = int(np.clip(v * rng.uniform(0.85, 1.1), 1, 127))
                    hits.append(Hit(max(0.0, tt), role, vv))
        if fill:
            for s in range(steps - steps // 4, steps):
                hits.append(Hit(t0 + s * step, "tom", int(rng.integers(80, 120)), tom=2 - (s % 3)))
        if fills and b % 8 == 0 and style not in ("kick_hats", "kick_snare") and roles is None:
            hits.append(Hit(t0, "crash", 105))
    return sorted([h for h in hits if h.t < seconds], key=lambda h: h.t)


# ---------------------------------------------------------------- kits

_ROLE_WORDS: dict[str, tuple[str, ...]] = {
    "kick": ("kick", "bass drum", "bassdrum", "thump", "djembe1 bass", "dununba1 head hit"),
    "snare": ("snare", "slap"),
    "chh": ("closed", "hat cl", "maraca", "djembe2 tone", "hat 1 cl", "shaker"),
    "ohh": ("open", "hat op", "semi"),
    "clap": ("clap",),
    "rim": ("stick", "rim", "clave", "woodblock", "snap"),
    "ride": ("ride",),
    "crash": ("crash", "china", "splash", "cymbal"),
    "tom": ("tom", "bongo", "sangban1 head hit", "kenkeni1 head hit", "conga"),
    "perc": ("cowbell", "tambourine", "agogo", "bell", "conga", "bongo"),
}
_ROLE_NOT: dict[str, tuple[str, ...]] = {"snare": ("roll", "rim"), "ride": ("bell",), "chh": ("tom",)}
_FALLBACK = {
    "chh": ("ride", "perc", "rim"),
    "ohh": ("chh",),
    "clap": ("snare",),
    "rim": ("snare",),
    "ride": ("chh",),
    "crash": ("ride", "ohh"),
    "tom": ("snare",),
    "perc": ("rim", "chh"),
}


def hydrogen_kits() -> list[str]:
    """Installed Hydrogen kits (folder names) that have at least a kick and a snare."""
    if not HYDROGEN_DIR.is_dir():
        return []
    out = []
    for d in sorted(HYDROGEN_DIR.iterdir()):
        if (d / "drumkit.xml").is_file():
            try:
                roles = _hydrogen_roles(d.name)
            except (ET.ParseError, OSError):
                continue
            if "kick" in roles and "snare" in roles:
                out.append(d.name)
    return out


@functools.lru_cache(maxsize=32)
def _hydrogen_roles(kit: str) -> dict[str, list[tuple[float, float, str]]]:
    """role -> velocity layers ``[(min, max, file)]`` of the first instrument of the kit that
    matches the role's words (the kit's own names, e.g. "Sabian Hat Closed")."""
    d = HYDROGEN_DIR / kit
    root = ET.parse(d / "drumkit.xml").getroot()
    ns = root.tag.split("}")[0] + "}" if root.tag.startswith("{") else ""
    insts = []
    for ins in root.iter(ns + "instrument"):
        name = (ins.findtext(ns + "name") or "").strip().lower()
        layers = []
        for lay in ins.iter(ns + "layer"):
            f = lay.findtext(ns + "filename")
            if f and (d / f).is_file():
                layers.append((float(lay.findtext(ns + "min") or 0), float(lay.findtext(ns + "max") or 1), f))
        if not layers:  # old kits: a bare filename
            f = ins.findtext(ns + "filename")
            if f and (d / f).is_file():
                layers.append((0.0, 1.0, f))
        if layers:
            insts.append((name, sorted(layers)))
    roles: dict[str, list[tuple[float, float, str]]] = {}
    for role in ROLES:
        for name, layers in insts:
            if any(w in name for w in _ROLE_WORDS[role]) and not any(
                w in name for w in _ROLE_NOT.get(role, ())
            ):
                roles[role] = layers
                break
    return roles


@functools.lru_cache(maxsize=256)
def _load_sample(path: str, sr: int) -> np.ndarray:
    x, fsr = sf.read(path, dtype="float32", always_2d=True)
    y = _resample(x.mean(axis=1), int(fsr), sr)[: int(2.5 * sr)]
    return (y / (np.abs(y).max() + 1e-9)).astype(np.float32)


def _kit_voices(kit: str, sr: int) -> dict[str, list[tuple[float, float, np.ndarray]]]:
    roles = _hydrogen_roles(kit)
    out = {
        r: [(lo, hi, _load_sample(str(HYDROGEN_DIR / kit / f), sr)) for lo, hi, f in lay]
        for r, lay in roles.items()
    }
    for r, alts in _FALLBACK.items():
        if r not in out:
            for a in alts:
                if a in out:
                    out[r] = out[a]
                    break
    return out


def synth_voices(sr: int, seed: int) -> dict[str, list[tuple[float, float, np.ndarray]]]:
    """An analog-style drum machine (808/909-like), parameters drawn from ``seed``: a sine kick
    swept down from 100..200 Hz to 40..60 Hz, a tone + noise snare, a 3-burst clap, metallic hats
    (six square waves at the 808's ratios, high-passed), a rim click, a cowbell, a swept tom."""
    from .negatives import shape_spectrum

    rng = np.random.default_rng([seed, 808])

    def t(sec: float) -> np.ndarray:
        return np.arange(int(sec * sr)) / sr

    tk = t(rng.uniform(0.3, 1.0))
    f1, f0, tp = rng.uniform(100, 200), rng.uniform(40, 60), rng.uniform(0.02, 0.08)
    ph = 2 * np.pi * np.cumsum(f0 + (f1 - f0) * np.exp(-tk / tp)) / sr
    kick = np.sin(ph) * np.exp(-tk / rng.uniform(0.1, 0.5))
    kick = np.tanh(kick * rng.uniform(1, 4))
    ts = t(0.3)
    tone = np.sin(2 * np.pi * rng.uniform(160, 240) * ts) * np.exp(-ts / 0.05)
    nz = shape_spectrum(
        rng.standard_normal(len(ts)).astype(np.float32),
        sr,
        lo=rng.uniform(800, 2000),
        hi=min(0.45 * sr, 9000),
    )
    snare = rng.uniform(0.3, 0.8) * tone + nz * np.exp(-ts / rng.uniform(0.04, 0.12))
    tc = t(0.25)
    cl = shape_spectrum(rng.standard_normal(len(tc)).astype(np.float32), sr, lo=900, hi=min(0.45 * sr, 5000))
    env = sum(np.where(tc >= d, np.exp(-(tc - d) / 0.008), 0.0) for d in (0.0, 0.011, 0.022))
    clap = cl * (env + 0.4 * np.where(tc >= 0.03, np.exp(-(tc - 0.03) / 0.08), 0.0))
    base = rng.uniform(0.9, 1.2)
    th = t(0.6)
    metal = sum(
        np.sign(np.sin(2 * np.pi * base * f * th)) for f in (205.3, 304.4, 369.6, 522.7, 540.0, 800.0)
    )
    metal = shape_spectrum(metal.astype(np.float32), sr, lo=min(0.35 * sr, 6000), order=3)
    chh = metal * np.exp(-th / rng.uniform(0.02, 0.05))
    ohh = metal * np.exp(-th / rng.uniform(0.15, 0.35))
    tr = t(0.05)
    rim = np.sin(2 * np.pi * 1700 * tr) * np.exp(-tr / 0.006)
    tb = t(0.4)
    cow = (np.sign(np.sin(2 * np.pi * 540 * tb)) + np.sign(np.sin(2 * np.pi * 800 * tb))) * np.exp(-tb / 0.08)
    tt = t(0.5)
    tom = np.sin(2 * np.pi * np.cumsum(rng.uniform(90, 160) * (1 + 0.5 * np.exp(-tt / 0.05))) / sr) * np.exp(
        -tt / 0.2
    )
    ride = metal[: len(th)] * np.exp(-th / 0.4) * 0.6
    crash = shape_spectrum(rng.standard_normal(int(1.5 * sr)).astype(np.float32), sr, lo=3000) * np.exp(
        -t(1.5) / 0.5
    )
    out = {}
    for name, y in (
        ("kick", kick),
        ("snare", snare),
        ("clap", clap),
        ("chh", chh),
        ("ohh", ohh),
        ("rim", rim),
        ("perc", cow),
        ("tom", tom),
        ("ride", ride),
        ("crash", crash),
    ):
        y = np.asarray(y, np.float32)
        out[name] = [(0.0, 1.0, y / (np.abs(y).max() + 1e-9))]
    return out


def _mix_hits(
    hits: Sequence[Hit],
    voices: dict[str, list[tuple[float, float, np.ndarray]]],
    seconds: float,
    sr: int,
    seed: int,
) -> np.ndarray:
    rng = np.random.default_rng([seed, 7])
    gains = {r: float(rng.uniform(0.7, 1.0)) for r in ROLES}
    gains.update(
        {
            "chh": gains["chh"] * 0.5,
            "ohh": gains["ohh"] * 0.45,
            "ride": gains["ride"] * 0.45,
            "crash": gains["crash"] * 0.5,
            "perc": gains["perc"] * 0.5,
        }
    )
    x = np.zeros(int(seconds * sr) + sr, np.float32)
    for h in hits:
        lay = voices.get(h.role)
        if not lay:
            continue
        v = h.vel / 127
        cand = [y for lo, hi, y in lay if lo <= v <= hi] or [lay[-1][2]]
        y = cand[rng.integers(len(cand))]
        if h.role == "tom" and len(y) > 10:  # three toms from one sample: a pitch shift by resampling
            k = (0.85, 1.0, 1.2)[h.tom]
            y = np.interp(np.arange(0, len(y) - 1, k), np.arange(len(y)), y).astype(np.float32)
        place(x, y, int(h.t * sr), gains[h.role] * v**1.5)
    return x[: int(seconds * sr)]


def _gm_events(hits: Sequence[Hit], program: int) -> list[tuple[float, bytes]]:
    ev: list[tuple[float, bytes]] = [(0.0, bytes([0xC9, program]))]
    toms = (41, 45, 48)
    for h in hits:
        key = toms[h.tom] if h.role == "tom" else GM_KEYS[h.role]
        if h.role == "kick" and program in (16, 0) and h.vel > 100:
            key = 35
        ev += _note(h.t, 0.12, key, h.vel, ch=9)
    return ev


def kits() -> list[str]:
    """Every kit id this machine can play: ``kit:NAME`` (Hydrogen), ``gm:PROGRAM`` (GM SoundFont,
    when FluidSynth is installed), ``synth:N`` (numpy, always)."""
    out = [f"kit:{k}" for k in hydrogen_kits()]
    if shutil.which("fluidsynth"):
        out += [f"gm:{p}" for p in GM_KITS]
    return out + [f"synth:{i}" for i in range(6)]


def play(hits: Sequence[Hit], kit: str, seconds: float, sr: int, seed: int) -> np.ndarray:
    """``hits`` on ``kit`` (a ``kits()`` id): dry float32 mono at ``sr``."""
    src, _, name = kit.partition(":")
    if src == "kit":
        return _mix_hits(hits, _kit_voices(name, sr), seconds, sr, seed)
    if src == "synth":
        return _mix_hits(hits, synth_voices(sr, int(name)), seconds, sr, seed)
    if src == "gm":
        return render(_gm_events(hits, int(name)), seconds, sr)
    raise ValueError(f"unknown kit {kit!r}: use one of kits()")


def groove(
    kit: str,
    style: str,
    bpm: float,
    seconds: float,
    sr: int,
    seed: int = 0,
    roles: Sequence[str] | None = None,
) -> np.ndarray:
    """One steady groove of ``style`` (STYLES) at ``bpm`` on ``kit`` (``kits()``), dry, float32
    mono at ``sr``, peak-normalised."""
    if style not in STYLES:
        raise ValueError(f"unknown groove style {style!r}: use one of {', '.join(STYLES)}")
    src = kit.partition(":")[0]
    x = play(pattern_hits(style, bpm, seconds, seed, human=src == "kit", roles=roles), kit, seconds, sr, seed)
    return (x / (np.abs(x).max() + 1e-9) * 0.9).astype(np.float32)


def _styles_for(kit: str) -> tuple[str, ...]:
    src, _, name = kit.partition(":")
    if (
        src == "synth"
        or (src == "gm" and int(name) in GM_ELECTRONIC)
        or name in ("HardElectro1", "ElectricEmpireKit", "Audiophob")
    ):
        return ELECTRONIC_STYLES
    if name in ("Gimme A Hand 1.0", "circAfrique v4"):
        return HAND_STYLES
    if src == "gm" and int(name) in (32, 40):
        return ("jazz_ride", "shuffle", "bossa", "kick_snare", "rock_ride")
    return ACOUSTIC_STYLES


def _stage(x: np.ndarray, sr: int, seed: int) -> np.ndarray:
    """A random level (-32..-12 dBFS), a room for 40 % of items, a venue floor 30..50 dB below."""
    rng = np.random.default_rng([seed, 99])
    x = at_db(x, 0.0)
    if rng.random() < 0.4:
        x = at_db(room(x, sr, seed + 1, (0.3, 1.2)), 0.0)
    x = x + at_db(room_tone(len(x) / sr, sr, seed + 2), -rng.uniform(30, 50))[: len(x)]
    return at_db(x, rng.uniform(-32, -12))


def _grooves(kind: str, n: int, sr: int, seed: int, seconds: float) -> list[tuple[str, str, np.ndarray]]:
    allk = kits()
    pool = [
        k
        for k in allk
        if k.startswith({"groove-kit": "kit:", "groove-gm": "gm:", "groove-synth": "synth:"}[kind])
    ]
    if not pool:
        log.warning("showmusic: no kits for %s (hydrogen-drumkits / fluidsynth missing); skipped", kind)
        return []
    out = []
    for i in range(n):
        kit = pool[i % len(pool)]
        styles = _styles_for(kit)
        s = seed * 100_000 + KINDS.index(kind) * 1000 + i
        rng = np.random.default_rng(s)
        style = styles[(i // len(pool) + int(rng.integers(len(styles)))) % len(styles)]
        bpm = float(rng.uniform(*STYLES[style][1]))
        x = groove(kit, style, bpm, seconds, sr, s)
        out.append((kit, f"{kind}-{s}-{style}-{int(bpm)}", _stage(x, sr, s)))
    return out


# ---------------------------------------------------------------- EDM from MIDI

_CHORDS = ((0, 3, 7), (-4, 0, 3), (-2, 2, 5), (-5, -2, 2))  # i VI VII v in a minor key, around the tonic


def _edm_events(
    seed: int, bpm: float, seconds: float, kit: str, full: bool
) -> tuple[list[Hit], list[tuple[float, bytes]]]:
    """Drum hits and melodic MIDI events (channels 0..2: bass, pad, lead) of a 16-bar piece: an
    intro of kick + hats only (``full=False``: the whole item), else intro 4 bars, bass in 4,
    breakdown 2 (pads + lead, no drums), build 2 (snare roll), drop 4."""
    rng = np.random.default_rng(seed)
    bar = 240.0 / bpm
    nb = int(np.ceil(seconds / bar))
    hats = str(rng.choice(["..x...x...x...x.", "xxxxxxxxxxxxxxxx", "..x...x...x...x."]))
    hits: list[Hit] = []
    ev: list[tuple[float, bytes]] = []
    root = int(rng.integers(33, 41))
    bass_p, pad_p, lead_p = (
        int(rng.choice([38, 39, 87])),
        int(rng.choice([88, 89, 90, 91, 94, 95, 50])),
        int(rng.choice([80, 81, 84, 62])),
    )
    ev += [(0.0, bytes([0xC0, bass_p])), (0.0, bytes([0xC1, pad_p])), (0.0, bytes([0xC2, lead_p]))]
    clap_from = int(rng.integers(8, 13)) if rng.random() < 0.5 else nb + 1  # half the intros: no clap
    for b in range(nb):
        t0 = b * bar
        sec = (
            "intro"
            if not full
            else (
                "intro"
                if b < 4
                else "bass"
                if b < 8
                else "break"
                if b < 10
                else "build"
                if b < 12
                else "drop"
            )
        )
        step = bar / 16
        if sec in ("intro", "bass", "drop"):
            for s in range(16):
                if s % 4 == 0:
                    hits.append(Hit(t0 + s * step, "kick", 120))
                if hats[s] != ".":
                    hits.append(
                        Hit(
                            t0 + s * step,
                            "chh" if hats[s] == "x" and s % 4 != 2 else "ohh",
                            95 if s % 4 == 2 else 60,
                        )
                    )
                if s in (4, 12) and (sec == "drop" or (not full and b >= clap_from)):
                    hits.append(Hit(t0 + s * step, "clap", 100))
        if sec == "build":
            k = 4 if b == 10 else 8
            for s in range(0, 16 * k // 4):
                hits.append(Hit(t0 + s * bar / (4 * k), "snare", int(50 + 70 * s / (4 * k))))
        ch = _CHORDS[b % 4]
        if sec in ("bass", "drop"):
            for s in range(2, 16, 4):  # off-beat bass
                ev += _note(
                    t0 + s * step, step * 1.6, root + ch[0] % 12 - (12 if ch[0] < 0 else 0) + 12, 100, ch=0
                )
        if sec in ("break", "build", "drop"):
            for n in ch:
                ev += _note(t0, bar * 0.98, root + 24 + n, 70, ch=1)
        if sec in ("break", "drop"):
            t = t0
            while t < t0 + bar - 1e-6:
                d = step * float(rng.choice([2, 2, 4, 1, 3]))
                ev += _note(
                    t, d * 0.9, root + 36 + int(rng.choice(ch)) + 12 * int(rng.integers(0, 2)), 90, ch=2
                )
                t += d
    return hits, ev


def edm(kit: str, seconds: float, sr: int, seed: int, full: bool = True) -> np.ndarray:
    """An EDM piece (``_edm_events``) with its drums on ``kit`` and bass, pad and lead from the GM
    SoundFont, dry, float32 mono at ``sr``."""
    rng = np.random.default_rng(seed)
    bpm = float(rng.uniform(120, 130)) if not full else float(rng.uniform(122, 132))
    hits, ev = _edm_events(seed, bpm, seconds, kit, full)
    hits = [h for h in hits if h.t < seconds]
    if kit.startswith("gm:"):
        prog = int(kit.split(":")[1])
        x = (
            render(_gm_events(hits, prog) + ev, seconds, sr)
            if ev
            else render(_gm_events(hits, prog), seconds, sr)
        )
    else:
        x = play(hits, kit, seconds, sr, seed)
        x = x / (np.abs(x).max() + 1e-9)
        if ev:
            m = render(ev, seconds, sr)
            x = x + m / (np.abs(m).max() + 1e-9) * float(rng.uniform(0.5, 0.9))
    return (x / (np.abs(x).max() + 1e-9) * 0.9).astype(np.float32)


def _edms(kind: str, n: int, sr: int, seed: int, seconds: float) -> list[tuple[str, str, np.ndarray]]:
    if not shutil.which("fluidsynth"):
        log.warning("showmusic: fluidsynth missing; %s skipped", kind)
        return []
    pool = [
        k
        for k in kits()
        if k in ("gm:24", "gm:25", "gm:0", "gm:16")
        or k.startswith("synth:")
        or k in ("kit:HardElectro1", "kit:ElectricEmpireKit", "kit:Audiophob", "kit:VariBreaks")
    ]
    out = []
    for i in range(n):
        s = seed * 100_000 + KINDS.index(kind) * 1000 + i
        kit = pool[i % len(pool)]
        x = edm(kit, seconds, sr, s, full=kind == "edm")
        out.append((kit, f"{kind}-{s}", _stage(x, sr, s)))
    return out


# ---------------------------------------------------------------- solo instruments

#: instrument -> (GM program, lowest, highest MIDI key, style): style "line" a melody, "legato" a
#: bowed/blown/sung melody (notes tied, expression swells), "chords" arpeggios and strums,
#: "drone" held chords (organ)
SOLO: dict[str, tuple[int, int, int, str]] = {
    "nylon-guitar": (24, 40, 76, "chords"),
    "steel-guitar": (25, 40, 76, "chords"),
    "jazz-guitar": (26, 40, 76, "line"),
    "overdrive-guitar": (29, 40, 79, "line"),
    "electric-bass": (33, 28, 55, "line"),
    "violin": (40, 55, 88, "legato"),
    "viola": (41, 48, 76, "legato"),
    "cello": (42, 36, 67, "legato"),
    "strings": (48, 43, 79, "legato"),
    "trumpet": (56, 55, 82, "line"),
    "trombone": (57, 40, 70, "legato"),
    "french-horn": (60, 41, 72, "legato"),
    "alto-sax": (65, 49, 80, "line"),
    "tenor-sax": (66, 44, 75, "line"),
    "oboe": (68, 58, 88, "legato"),
    "clarinet": (71, 50, 86, "line"),
    "flute": (73, 60, 93, "line"),
    "choir-aahs": (52, 48, 79, "legato"),
    "voice-oohs": (53, 48, 76, "legato"),
    "church-organ": (19, 36, 79, "drone"),
    "drawbar-organ": (16, 36, 79, "drone"),
    "piano": (0, 36, 88, "chords"),
    "vibraphone": (11, 53, 89, "line"),
    "marimba": (12, 48, 84, "line"),
    "synth-lead": (81, 48, 84, "line"),
    "harp": (46, 36, 88, "chords"),
}
_SCALES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "blues": (0, 3, 5, 6, 7, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
}
#: public-domain tunes as (scale degree from the tonic in semitones, beats)
TUNES = {
    "ode-to-joy": [
        (4, 1),
        (4, 1),
        (5, 1),
        (7, 1),
        (7, 1),
        (5, 1),
        (4, 1),
        (2, 1),
        (0, 1),
        (0, 1),
        (2, 1),
        (4, 1),
        (4, 1.5),
        (2, 0.5),
        (2, 2),
        (4, 1),
        (4, 1),
        (5, 1),
        (7, 1),
        (7, 1),
        (5, 1),
        (4, 1),
        (2, 1),
        (0, 1),
        (0, 1),
        (2, 1),
        (4, 1),
        (2, 1.5),
        (0, 0.5),
        (0, 2),
    ],
    "amazing-grace": [
        (-5, 1),
        (0, 2),
        (4, 0.5),
        (0, 0.5),
        (4, 2),
        (2, 1),
        (0, 2),
        (-3, 1),
        (-5, 2),
        (-5, 1),
        (0, 2),
        (4, 0.5),
        (0, 0.5),
        (4, 2),
        (2, 1),
        (7, 3),
        (7, 2),
        (4, 1),
        (7, 1.5),
        (4, 0.5),
        (0, 0.5),
        (4, 2),
        (2, 1),
        (0, 2),
        (-3, 1),
        (-5, 2),
        (-5, 1),
        (0, 2),
        (4, 0.5),
        (0, 0.5),
        (4, 2),
        (2, 1),
        (0, 3),
    ],
    "frere-jacques": [(0, 1), (2, 1), (4, 1), (0, 1)] * 2
    + [(4, 1), (5, 1), (7, 2)] * 2
    + [(7, 0.5), (9, 0.5), (7, 0.5), (5, 0.5), (4, 1), (0, 1)] * 2
    + [(0, 1), (-5, 1), (0, 2)] * 2,
    "greensleeves": [
        (-3, 1),
        (0, 2),
        (2, 1),
        (3, 1.5),
        (5, 0.5),
        (3, 1),
        (2, 2),
        (-1, 1),
        (-5, 1.5),
        (-3, 0.5),
        (-1, 1),
        (0, 2),
        (-3, 1),
        (-3, 1.5),
        (-4, 0.5),
        (-3, 1),
        (-1, 2),
        (-4, 1),
        (-7, 2),
        (-3, 1),
        (0, 2),
        (2, 1),
        (3, 1.5),
        (5, 0.5),
        (3, 1),
        (2, 2),
        (-1, 1),
        (-5, 1.5),
        (-3, 0.5),
        (-1, 1),
        (0, 1.5),
        (-1, 0.5),
        (-3, 1),
        (-4, 1.5),
        (-6, 0.5),
        (-4, 1),
        (-3, 3),
    ],
}


def _melody(
    rng: np.random.Generator, lo: int, hi: int, seconds: float, bpm: float
) -> list[tuple[float, float, int, int]]:
    """Phrases of ``(start s, duration s, key, velocity)``: a tune from TUNES (a third of the time)
    or 2-bar motifs varied by transposition, each phrase ending on a long note and a breath."""
    beat = 60.0 / bpm
    tonic = int(rng.integers(lo + 5, max(lo + 6, (lo + hi) // 2)))
    notes: list[tuple[float, float, int, int]] = []
    t = float(rng.uniform(0, 0.3))
    if rng.random() < 0.33:
        tune = TUNES[list(TUNES)[int(rng.integers(len(TUNES)))]]
        while t < seconds:
            for deg, b in tune:
                k = int(np.clip(tonic + deg, lo, hi))
                notes.append((t, b * beat, k, int(rng.integers(70, 110))))
                t += b * beat
            t += beat * float(rng.choice([1.0, 2.0]))
        return notes
    scale = _SCALES[list(_SCALES)[int(rng.integers(len(_SCALES)))]]
    cells = ([1.0], [0.5, 0.5], [1.5, 0.5], [0.75, 0.25], [2.0], [0.5, 0.25, 0.25], [1 / 3] * 3)

    def key(deg: int) -> int:
        return tonic + 12 * (deg // len(scale)) + scale[deg % len(scale)]

    while t < seconds:
        rhythm: list[float] = []
        while sum(rhythm) < 7:
            rhythm += list(cells[int(rng.integers(len(cells)))])
        degs = [0]
        for _ in rhythm[1:]:
            degs.append(degs[-1] + int(rng.choice([-2, -1, -1, 1, 1, 2, 3, -3, 0])))
        for rep in range(int(rng.integers(1, 3))):
            shift = 0 if rep == 0 else int(rng.choice([-2, -1, 1, 2]))
            for d, b in zip(degs, rhythm, strict=True):
                k = int(np.clip(key(d + shift), lo, hi))
                notes.append((t, b * beat, k, int(rng.integers(65, 115))))
                t += b * beat
            notes.append((t, 2 * beat, int(np.clip(key(int(rng.choice([0, 2, 4]))), lo, hi)), 90))
            t += 2 * beat + beat * float(rng.choice([0.5, 1.0]))
    return notes


def solo(instrument: str, seconds: float, sr: int, seed: int) -> np.ndarray:
    """``instrument`` (SOLO) playing phrases alone, FluidSynth + the GM SoundFont, dry, float32
    mono at ``sr``."""
    prog, lo, hi, style = SOLO[instrument]
    rng = np.random.default_rng(seed)
    bpm = float(rng.uniform(66, 128))
    ev: list[tuple[float, bytes]] = [(0.0, bytes([0xC0, prog])), (0.0, bytes([0xB0, 7, 110]))]
    beat = 60.0 / bpm
    if style == "drone":
        t, i = 0.0, 0
        root = int(rng.integers(lo + 8, lo + 20))
        ev += _note(0.0, seconds, root - 12 if root - 12 >= lo else root, 80)  # the pedal drone
        while t < seconds:
            d = beat * float(rng.choice([4, 8]))
            for n in _CHORDS[i % 4]:
                ev += _note(t, d * 0.98, root + 12 + n, 75)
            top = _melody(rng, root + 19, min(hi, root + 31), d, bpm)
            ev += [e for s, dd, k, v in top for e in _note(t + s, dd * 0.95, k, v)]
            t += d
            i += 1
    elif style == "chords":
        t, i = 0.0, 0
        root = int(rng.integers(lo + 4, lo + 14))
        if rng.random() < 0.5:  # arpeggios
            while t < seconds:
                ch = [root + n for n in _CHORDS[i % 4]] + [root + 12 + _CHORDS[i % 4][0]]
                for j in range(8):
                    ev += _note(
                        t + j * beat / 2,
                        beat * 1.5,
                        int(ch[[0, 1, 2, 3, 2, 1, 2, 3][j]]),
                        int(rng.integers(60, 100)),
                    )
                t += 4 * beat
                i += 1
        else:  # melody over a strummed chord per bar
            mel = _melody(rng, root + 12, hi, seconds, bpm)
            while t < seconds:
                for j, n in enumerate(_CHORDS[i % 4]):
                    ev += _note(t + j * 0.015, 4 * beat * 0.95, root + n, 70)
                t += 4 * beat
                i += 1
            ev += [e for s, d, k, v in mel for e in _note(s, d * 0.9, k, v)]
    else:
        mel = _melody(rng, lo, hi, seconds, bpm)
        legato = style == "legato"
        if legato:
            ev.append((0.0, bytes([0xB0, 1, int(rng.integers(20, 70))])))  # vibrato
        for s, d, k, v in mel:
            ev += _note(s, d * (1.02 if legato else float(rng.uniform(0.6, 0.95))), k, v)
            if legato:
                for j in range(4):  # an expression swell over the note
                    ev.append((s + d * j / 4, bytes([0xB0, 11, int(80 + 40 * np.sin(np.pi * j / 4))])))
    x = render(ev, seconds, sr)
    return (x / (np.abs(x).max() + 1e-9) * 0.9).astype(np.float32)


def _solos(kind: str, n: int, sr: int, seed: int, seconds: float) -> list[tuple[str, str, np.ndarray]]:
    if not shutil.which("fluidsynth"):
        log.warning("showmusic: fluidsynth missing; solo skipped")
        return []
    names = list(SOLO)
    out = []
    for i in range(n):
        s = seed * 100_000 + KINDS.index(kind) * 1000 + i
        inst = names[i % len(names)]
        out.append((f"solo:{inst}", f"solo-{s}-{inst}", _stage(solo(inst, seconds, sr, s), sr, s)))
    return out


# ---------------------------------------------------------------- recorded music (Debian packages)

#: Debian packages of recorded music (game soundtracks) and their licences (debian/copyright)
PACKAGES = {
    "singularity-music": "CC-BY-SA-3.0",
    "wesnoth-1.16-music": "GPL-2",
    "hyperrogue-music": "GPL-2+",
    "nexuiz-music": "GPL-2+",
    "asc-music": "GPL-2+",
    "drascula-music": "Drascula licence (free redistribution)",
}
_AUDIO = (".ogg", ".mp3", ".flac", ".wav", ".opus")


def package_tracks(package: str) -> list[tuple[str, str]]:
    """``[(path, member)]`` of the recordings an installed package ships (``dpkg -L``; a member
    name for audio inside a .pk3/zip archive, else ""); empty when not installed."""
    try:
        files = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    out: list[tuple[str, str]] = []
    for f in sorted(files.splitlines()):
        p = Path(f)
        if not p.is_file() or "/doc/" in f:
            continue
        if p.suffix.lower() in _AUDIO:
            out.append((f, ""))
        elif p.suffix.lower() in (".pk3", ".zip"):
            with zipfile.ZipFile(p) as z:
                out += [(f, m) for m in sorted(z.namelist()) if Path(m).suffix.lower() in _AUDIO]
    return out


def _excerpt(path: str, member: str, seconds: float, sr: int, rng: np.random.Generator) -> np.ndarray | None:
    """``seconds`` from a random point of a track (after its first 10 %), mono at ``sr`` (None:
    too short or undecodable)."""
    import io

    try:
        src = io.BytesIO(zipfile.ZipFile(path).read(member)) if member else path
        with sf.SoundFile(src) as f:
            n = int(seconds * f.samplerate)
            if f.frames < n + f.samplerate:
                return None
            start = int(rng.uniform(min(0.1 * f.frames, f.frames - n), f.frames - n))
            f.seek(start)
            x = f.read(n, dtype="float32", always_2d=True)
            fsr = f.samplerate
    except (RuntimeError, OSError, zipfile.BadZipFile, sf.LibsndfileError) as e:
        log.warning("showmusic: %s%s: %s", path, f":{member}" if member else "", e)
        return None
    return _resample(x.mean(axis=1), int(fsr), sr)


def _recorded(kind: str, n: int, sr: int, seed: int, seconds: float) -> list[tuple[str, str, np.ndarray]]:
    """``n`` excerpts spread over the installed PACKAGES (round robin, one track once), each at
    least -45 dBFS RMS (a near-silent stretch of a file is not what the floor asks about)."""
    tracks = {p: package_tracks(p) for p in PACKAGES}
    tracks = {p: t for p, t in tracks.items() if t}
    if not tracks:
        log.warning("showmusic: no music package installed (%s); recorded skipped", ", ".join(PACKAGES))
        return []
    rng = np.random.default_rng([seed, 5])
    order = {p: [t[j] for j in rng.permutation(len(t))] for p, t in tracks.items()}

    def take(p: str, track: tuple[str, str], s: int) -> tuple[str, str, np.ndarray | None]:
        path, member = track
        x = _excerpt(path, member, seconds, sr, np.random.default_rng(s))
        return f"pkg:{p}", f"recorded-{s}-{p}-{Path(member or path).stem}"[:120], x

    return _round_robin(order, n, kind, sr, seed, take)


def _round_robin(order: dict[str, list[Any]], n: int, kind: str, sr: int, seed: int,
                 take: Callable[[str, Any, int], tuple[str, str, np.ndarray | None]],
                 ) -> list[tuple[str, str, np.ndarray]]:
    """Up to ``n`` staged items from recordings, one track from each group of ``order`` in turn
    (sorted; each track once): ``take(group, track, item_seed)`` gives (item group, name, audio or
    None); a track that gives None or is under -45 dBFS RMS is skipped (a near-silent stretch of a
    file is not what the floors ask about)."""
    out: list[tuple[str, str, np.ndarray]] = []
    keys = sorted(order)
    i = 0
    while len(out) < n and any(order.values()):
        g = keys[i % len(keys)]
        i += 1
        if not order[g]:
            continue
        s = seed * 100_000 + KINDS.index(kind) * 1000 + len(out)
        group, name, x = take(g, order[g].pop(0), s)
        if x is None or 20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2)) + 1e-12) < -45:
            continue
        out.append((group, name, _stage(x, sr, s)))
    return out

# ---------------------------------------------------------------- sustained chords (pads, organs, drones)

#: family -> GM programs (``synth``: numpy pads, no program); a family is one group (held out whole)
PAD_FAMILIES: dict[str, tuple[int, ...]] = {
    "gm-pad-warm": (88, 89, 90, 91),  # new age, warm, polysynth, choir pad
    "gm-pad-fx": (92, 93, 94, 95),  # bowed, metallic, halo, sweep
    "gm-organ": (16, 17, 19, 20),  # drawbar, percussive, church, reed organ
    "gm-strings": (48, 49, 50, 51),  # string ensembles 1 and 2, synth strings 1 and 2
    "gm-choir": (52, 53, 54),  # choir aahs, voice oohs, synth voice
    "synth": (),  # detuned saws / triangles, a breathing low-pass
    "additive": (),  # soft sine tones with a few weak partials (sine organs, glass pads), slow swells
}
#: chord shapes above a root (3..5 notes): triads, sevenths, sus, add9, open fifths + third
_SHAPES = ((0, 4, 7), (0, 3, 7), (0, 4, 7, 11), (0, 3, 7, 10), (0, 5, 7), (0, 2, 7), (0, 4, 7, 14),
           (0, 3, 7, 14), (0, 7, 16), (0, 7, 15), (0, 4, 7, 9), (0, 3, 7, 10, 14))
_MAJOR = (0, 2, 4, 5, 7, 9, 11)


def _pad_plan(
    rng: np.random.Generator, seconds: float, style: str
) -> tuple[list[tuple[float, float, list[int], int]], list[tuple[float, float, int, int]]]:
    """``(chords, bass)``: chords ``(start, duration, keys, velocity)`` of 3+ notes that change
    (a random diatonic walk in a random key, each held 2-6 s, a change every 2-4 s, overlaps
    allowed), and a slow bass (or a drone: ``style`` "drone", root + fifth under the whole item
    with upper voices moving one at a time)."""
    tonic = int(rng.integers(50, 62))
    loud = rng.random() < 0.4
    vel = (int(rng.integers(80, 115)) if loud else int(rng.integers(35, 65)))
    chords: list[tuple[float, float, list[int], int]] = []
    bass: list[tuple[float, float, int, int]] = []
    t = float(rng.uniform(0, 0.5))
    if style == "drone":
        root = tonic - 12
        bass.append((0.0, seconds, root - 12 if rng.random() < 0.5 else root, vel))
        upper = sorted(tonic + _MAJOR[int(j)] + (12 if rng.random() < 0.3 else 0)
                       for j in rng.choice(7, size=3, replace=False))
        while t < seconds:
            d = float(rng.uniform(1.5, 4.0))
            chords.append((t, d * 1.05, [root + 7, *upper], vel))
            j = int(rng.integers(len(upper)))  # one voice moves a step of the scale
            deg = [(k - tonic) % 12 for k in upper]
            cand = [tonic + m + 12 * ((upper[j] - tonic) // 12) for m in _MAJOR if m not in deg]
            upper[j] = min(cand, key=lambda k: abs(k - upper[j]) + rng.uniform(0, 3))
            upper = sorted(upper)
            t += d
        return chords, bass
    deg = int(rng.integers(7))
    with_bass = rng.random() < 0.6
    while t < seconds:
        step = float(rng.uniform(2.0, 4.0))
        hold = float(np.clip(step * rng.uniform(1.0, 1.6), 2.0, 6.0))
        deg = (deg + int(rng.choice([1, 2, 3, 4, 5, -1, -2]))) % 7
        root = tonic + _MAJOR[deg] - (12 if _MAJOR[deg] > 6 else 0)
        shape = _SHAPES[int(rng.integers(len(_SHAPES)))]
        inv = int(rng.integers(len(shape)))  # an inversion: the lowest notes an octave up
        keys = sorted(root + n + (12 if i < inv else 0) for i, n in enumerate(shape))
        chords.append((t, hold, keys, int(np.clip(vel + rng.integers(-10, 11), 25, 127))))
        if with_bass:
            bass.append((t, hold * 0.98, root - 24 if root - 24 >= 28 else root - 12, vel))
        t += step
    return chords, bass


def _synth_pad(chords: Sequence[tuple[float, float, list[int], int]], seconds: float, sr: int,
               rng: np.random.Generator) -> np.ndarray:
    """Chords on an analog-style pad made here: 2-3 detuned saws or triangles per note, a one-pole
    low-pass breathing slowly, a slow attack and release."""
    from scipy.signal import lfilter

    n = int(seconds * sr)
    out = np.zeros(n + 8 * sr, np.float64)
    wave = str(rng.choice(["saw", "tri", "saw"]))
    att, rel = float(rng.uniform(0.2, 1.5)), float(rng.uniform(0.5, 2.5))
    det = float(rng.uniform(0.002, 0.008))
    cut = float(rng.uniform(600, 2500))
    for t0, d, keys, v in chords:
        m = int((d + rel) * sr)
        tt = np.arange(m) / sr
        env = np.minimum(1.0, tt / att) * np.where(tt > d, np.exp(-(tt - d) * 4 / rel), 1.0)
        sig = np.zeros(m)
        for k in keys:
            f0 = 440.0 * 2 ** ((k - 69) / 12)
            for dd in (-det, 0.0, det)[: int(rng.integers(2, 4))]:
                ph = (f0 * (1 + dd) * tt + rng.random()) % 1.0
                sig += (2 * ph - 1) if wave == "saw" else (2 * np.abs(2 * ph - 1) - 1)
        place(out, (sig * env * v / 127 / len(keys)).astype(np.float64), int(t0 * sr))  # type: ignore[arg-type]
    # a one-pole low-pass whose cutoff breathes (blocks of 50 ms)
    y = np.zeros_like(out)
    z, blk = 0.0, sr // 20
    for b in range(0, len(out), blk):
        fc = cut * (1 + 0.5 * np.sin(2 * np.pi * 0.07 * b / sr))
        a = float(np.exp(-2 * np.pi * fc / sr))
        y[b : b + blk], zf = lfilter([1 - a], [1, -a], out[b : b + blk], zi=[z])
        z = float(zf[0])
    return y[:n].astype(np.float32)


def _additive_pad(chords: Sequence[tuple[float, float, list[int], int]], seconds: float, sr: int,
                  rng: np.random.Generator) -> np.ndarray:
    """Chords of soft, nearly pure tones: a sine and up to 4 weak partials (drawn per item: a sine
    organ, a hollow odd-partial tone, a glassy 4th/5th partial), a slow chorus, and swells of 10-45 %
    of each chord's length; the presence model of the fourth step heard these (and GM pads did not
    teach it them) as "no music"."""
    n = int(seconds * sr)
    out = np.zeros(n + 8 * sr, np.float64)
    parts = [(1, 1.0)] + [(h, float(rng.uniform(0.02, 0.35))) for h in (2, 3, 4, 5) if rng.random() < 0.45]
    att, rel = float(rng.uniform(0.1, 0.45)), float(rng.uniform(0.15, 0.45))
    vib_hz, vib = float(rng.uniform(0.1, 0.6)), float(rng.uniform(0.0, 0.004))
    for t0, d, keys, v in chords:
        m = int(d * sr)
        tt = np.arange(m) / sr
        env = np.clip(np.minimum(tt / (att * d), (d - tt) / (rel * d)), 0.0, 1.0) ** float(rng.uniform(1, 2))
        sig = np.zeros(m)
        for j, k in enumerate(keys):
            f = 440.0 * 2 ** ((k - 69) / 12) * (1 + vib * np.sin(2 * np.pi * (vib_hz + 0.05 * j) * tt))
            ph = 2 * np.pi * np.cumsum(f) / sr + rng.uniform(0, 6.3)
            sig += sum(a * np.sin(h * ph) for h, a in parts)
        place(out, sig * env * v / 127 / len(keys), int(t0 * sr))  # type: ignore[arg-type]
    return out[:n].astype(np.float32)


def pad(family: str, style: str, seconds: float, sr: int, seed: int) -> np.ndarray:
    """Sustained-chord music of ``family`` (PAD_FAMILIES) in ``style`` ("chords", "drone",
    "ambient": overlapping chords, expression swells, a sparse high bell), dry, float32 mono."""
    rng = np.random.default_rng(seed)
    chords, bass = _pad_plan(rng, seconds, "drone" if style == "drone" else "chords")
    if style == "ambient":  # chords overlap the next by 1-2 s
        chords = [(t, d + float(rng.uniform(1, 2)), k, v) for t, d, k, v in chords]
    if family in ("synth", "additive"):
        make = _synth_pad if family == "synth" else _additive_pad
        x = make(chords, seconds, sr, rng)
        if bass:
            b = make([(t, d, [k], v) for t, d, k, v in bass], seconds, sr, rng)
            x = x + b * float(rng.uniform(0.3, 0.7))
    else:
        progs = PAD_FAMILIES[family]
        prog = int(progs[seed % len(progs)])
        bprog = int(rng.choice([prog, 32, 33, 38, 89, 42]))
        ev: list[tuple[float, bytes]] = [(0.0, bytes([0xC0, prog])), (0.0, bytes([0xC1, bprog])),
                                         (0.0, bytes([0xB0, 7, 110])), (0.0, bytes([0xB1, 7, 90]))]
        for t, d, keys, v in chords:
            ev += [e for k in keys for e in _note(t, d, k, v)]
            if style == "ambient":  # an expression swell over the chord
                sw = [int(70 + 50 * np.sin(np.pi * j / 6)) for j in range(6)]
                ev += [(t + d * j / 6, bytes([0xB0, 11, w])) for j, w in enumerate(sw)]
        ev += [e for t, d, k, v in bass for e in _note(t, d, k, v, ch=1)]
        if style == "ambient" and rng.random() < 0.6:  # a sparse bell over it
            bell = int(rng.choice([8, 9, 11, 14, 98, 112]))
            ev.append((0.0, bytes([0xC2, bell])))
            t = float(rng.uniform(1, 4))
            while t < seconds:
                ch = chords[max(0, int(np.searchsorted([c[0] for c in chords], t)) - 1)][2]
                ev += _note(t, 1.5, int(rng.choice(ch)) + 12, int(rng.integers(30, 70)), ch=2)
                t += float(rng.uniform(2, 6))
        x = render(ev, seconds, sr)
    return (x / (np.abs(x).max() + 1e-9) * 0.9).astype(np.float32)


def _pads(kind: str, n: int, sr: int, seed: int, seconds: float) -> list[tuple[str, str, np.ndarray]]:
    fams = list(PAD_FAMILIES) if shutil.which("fluidsynth") else ["synth", "additive"]
    if len(fams) == 2:
        log.warning("showmusic: fluidsynth missing; pad makes numpy synth pads only")
    styles = ("chords", "chords", "drone", "ambient")
    out = []
    for i in range(n):
        s = seed * 100_000 + KINDS.index(kind) * 1000 + i
        fam = fams[i % len(fams)]
        style = styles[(i // len(fams)) % len(styles)]
        out.append((f"pad:{fam}", f"pad-{s}-{fam}-{style}", _stage(pad(fam, style, seconds, sr, s), sr, s)))
    return out


# ---------------------------------------------------------------- song starts (recorded intros)

#: Debian packages whose recordings' first 30 s make the ``intro`` kind: a song as a show plays it,
#: from its first second, quiet intros included (the ``recorded`` kind takes excerpts from after
#: a track's first 10 %); (package, folder the music lies under, licence in debian/copyright)
INTRO_PACKAGES = {
    "warzone2100-music": ("/music/albums/", "GPL-2+"),
    "hedgewars-data": ("/Data/Music/", "GPL-2"),
    "planetblupi-music-ogg": ("/planetblupi/music/", "GPL-3+"),
}
#: a group per composer: Warzone 2100's original soundtrack (Martin Severn) and its two community
#: albums (LupusMechanicus); else one per package. Remakes of another album's track (``*_enhanced``)
#: are left out, so no tune is in two groups
_INTRO_GROUP = {"original_soundtrack": "warzone2100-severn", "aftermath_soundtrack": "warzone2100-lupus",
                "legacy_soundtrack": "warzone2100-lupus"}


def _song_start(path: str, seconds: float, sr: int) -> np.ndarray | None:
    """The first ``seconds`` of a track from its first audible sample (above -60 dBFS), mono at
    ``sr`` (None: shorter, or undecodable)."""
    try:
        with sf.SoundFile(path) as f:
            fsr = f.samplerate
            x = f.read(int((seconds + 20) * fsr), dtype="float32", always_2d=True).mean(axis=1)
    except (RuntimeError, OSError, sf.LibsndfileError) as e:
        log.warning("showmusic: %s: %s", path, e)
        return None
    loud = np.nonzero(np.abs(x) > 1e-3)[0]
    if not len(loud) or len(x) - loud[0] < seconds * fsr:
        return None
    return _resample(x[loud[0] : loud[0] + int(seconds * fsr)], int(fsr), sr)


def _intros(kind: str, n: int, sr: int, seed: int, seconds: float) -> list[tuple[str, str, np.ndarray]]:
    """The first ``seconds`` of up to ``n`` tracks of INTRO_PACKAGES, round robin over the groups."""
    by_group: dict[str, list[str]] = {}
    for pkg, (under, _lic) in INTRO_PACKAGES.items():
        for path, member in package_tracks(pkg):
            if member or under not in path or "_enhanced" in path:
                continue
            by_group.setdefault(_INTRO_GROUP.get(Path(path).parent.name, pkg.split("-")[0]), []).append(path)
    if not by_group:
        log.warning("showmusic: no intro package installed (%s); intro skipped", ", ".join(INTRO_PACKAGES))
        return []
    rng = np.random.default_rng([seed, 11])
    order = {g: [t[j] for j in rng.permutation(len(t))] for g, t in sorted(by_group.items())}

    def take(g: str, path: str, s: int) -> tuple[str, str, np.ndarray | None]:
        return f"intro:{g}", f"intro-{s}-{g}-{Path(path).stem}"[:120], _song_start(path, seconds, sr)

    return _round_robin(order, n, kind, sr, seed, take)


# ---------------------------------------------------------------- the corpus

_MAKERS = {
    "groove-kit": _grooves,
    "groove-gm": _grooves,
    "groove-synth": _grooves,
    "edm-intro": _edms,
    "edm": _edms,
    "solo": _solos,
    "recorded": _recorded,
    "pad": _pads,
    "intro": _intros,
}


def items(
    kind: str, sr: int = 16000, seed: int = 0, seconds: float = 30.0, count: int | None = None
) -> list[tuple[str, str, np.ndarray]]:
    """``count`` (default DEFAULT_COUNTS[kind]) items of ``kind``: ``[(group, name, audio)]``,
    audio float32 mono at ``sr``, ``seconds`` long, deterministic for ``seed``; groups are kits
    (``kit:``, ``gm:``, ``synth:``), instruments (``solo:``) or packages (``pkg:``)."""
    if kind not in _MAKERS:
        raise ValueError(f"unknown music kind {kind!r}: use one of {', '.join(KINDS)}")
    n = DEFAULT_COUNTS[kind] if count is None else int(count)
    return _MAKERS[kind](kind, n, sr, seed, seconds)


@dataclass(frozen=True)
class MusicItem:
    kind: str
    group: str
    name: str
    audio: np.ndarray


def corpus(
    sr: int = 16000,
    seed: int = 0,
    seconds: float = 30.0,
    counts: dict[str, int] | None = None,
    progress: bool = False,
) -> list[MusicItem]:
    """Every kind (``counts`` per kind, default DEFAULT_COUNTS) as ``MusicItem``s."""
    from tqdm.auto import tqdm

    cnt = dict(DEFAULT_COUNTS if counts is None else counts)
    out = []
    for kind in tqdm([k for k in KINDS if cnt.get(k)], desc="showmusic", disable=not progress, leave=False):
        out += [MusicItem(kind, g, n, x) for g, n, x in items(kind, sr, seed, seconds, cnt[kind])]
    return out


def available() -> dict[str, bool]:
    """Which kinds this machine can make (kits, FluidSynth + a GM SoundFont, music packages)."""
    fl = shutil.which("fluidsynth") is not None
    try:
        gm_soundfont()
        sf2 = True
    except RuntimeError:
        sf2 = False
    return {
        "groove-kit": bool(hydrogen_kits()),
        "groove-gm": fl and sf2,
        "groove-synth": True,
        "edm-intro": fl and sf2,
        "edm": fl and sf2,
        "solo": fl and sf2,
        "recorded": any(package_tracks(p) for p in PACKAGES),
        "pad": True,
    }
