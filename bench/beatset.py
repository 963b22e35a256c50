"""A beat-tracking evaluation set with exact beat grids at 60-210 BPM, built from packages here.

Why: the tracker's weak spots (the 3:2 lock at 170-200 BPM, a slow first beat, drum intros the
presence gate calls "no music") show only on full-band drums, not on the synthetic grooves of
tests/grooves.py. Every item is sequenced here, so its beat grid is exact by construction:

* drums: real recorded samples of Debian's Hydrogen kits (``hydrogen-drumkits``,
  /usr/share/hydrogen/data/drumkits), sequenced in numpy in one of nine styles (rock eighths,
  four on the floor, disco, punk/d-beat, drum & bass two-step, metal double kick, breakbeat,
  shuffle, kick + snare without hats), with velocity and timing humanised (+-4 ms);
* bass and chords: a mido-made MIDI rendered by FluidSynth with the GM SoundFont
  (/usr/share/sounds/sf2/default-GM.sf2 or TimGM6mb.sf2, ``fluid-soundfont-gm``/``timgm6mb-soundfont``)
  on a seeded four-bar progression;
* 1 s of silence first (the first true beat is at 1.0 s: time to first beat is measured from it),
  then 30 s of music; two items change tempo half-way (a cut to another groove).

    python -m bench.beatset --out cache/beatset   # writes WAVs + beats.json (the rebuild command)

Nothing is downloaded; the audio is not committed (cache/ is ignored).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SR = 44100
KITS = Path("/usr/share/hydrogen/data/drumkits")
SF2S = (Path("/usr/share/sounds/sf2/default-GM.sf2"), Path("/usr/share/sounds/sf2/TimGM6mb.sf2"),
        Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"))
LEAD_S = 1.0  #: silence before the music

#: instrument-name patterns of a Hydrogen kit, per role (first match wins)
ROLES = {
    "kick": r"kick|bassdrum|bass drum|\bbd\b",
    "snare": r"snare(?! jazz)(?! roll)|\bsd\b",
    "hat": r"closed|hat.*cl\b|hh 1|hat closed",
    "open": r"open|op\b|hat op",
    "crash": r"crash",
    "ride": r"ride(?! bell)",
    "clap": r"clap",
}
#: kits with a full drum set (the hand-percussion and djembe kits have no kick/snare/hat)
DRUM_KITS = ("BJA_Pacific", "ColomboAcousticDrumkit", "ElectricEmpireKit", "ForzeeStereo", "HardElectro1",
             "Millo-Drums_v.1", "Millo_MultiLayered2", "The Black Pearl 1.0", "VariBreaks", "Audiophob",
             "rumpf_kit_z01_h2")

#: styles: per bar of 16 sixteenths, (role, steps, velocity); "triplet" styles use 12 steps
STYLES: dict[str, list[tuple[str, tuple[int, ...], float]]] = {
    "rock": [("kick", (0, 8, 10), 1.0), ("snare", (4, 12), 0.9), ("hat", tuple(range(0, 16, 2)), 0.5)],
    "four on the floor": [("kick", (0, 4, 8, 12), 1.0), ("clap", (4, 12), 0.7),
                          ("open", (2, 6, 10, 14), 0.45),
                          ("hat", tuple(range(16)), 0.25)],
    "disco": [("kick", (0, 4, 8, 12), 1.0), ("snare", (4, 12), 0.8), ("open", (2, 6, 10, 14), 0.5),
              ("hat", (0, 4, 8, 12), 0.35)],
    "punk": [("kick", (0, 6, 8), 1.0), ("snare", (4, 12), 1.0), ("hat", tuple(range(0, 16, 2)), 0.6),
             ("crash", (0,), 0.5)],
    "drum & bass": [("kick", (0, 10), 1.0), ("snare", (4, 12), 1.0), ("hat", tuple(range(0, 16, 2)), 0.45),
                    ("ride", (2, 6, 10, 14), 0.3)],
    "metal double kick": [("kick", tuple(range(16)), 0.8), ("snare", (4, 12), 1.0), ("crash", (0, 8), 0.5),
                          ("ride", (0, 4, 8, 12), 0.4)],
    "breakbeat": [("kick", (0, 2, 10, 11), 1.0), ("snare", (4, 7, 9, 12, 15), 0.85),
                  ("hat", tuple(range(0, 16, 2)), 0.5)],
    "shuffle": [("kick", (0, 6), 1.0), ("snare", (3, 9), 0.9), ("hat", (0, 2, 3, 5, 6, 8, 9, 11), 0.5)],
    "kick + snare": [("kick", (0, 8, 10), 1.0), ("snare", (4, 12), 1.0)],
}
TRIPLET = {"shuffle"}

#: (style, bpm): 60-90, 95-150 and 160-210 BPM
ITEMS: list[tuple[str, float]] = [
    ("rock", 60), ("shuffle", 72), ("disco", 85), ("kick + snare", 90),
    ("rock", 95), ("breakbeat", 100), ("shuffle", 110), ("four on the floor", 120), ("disco", 124),
    ("four on the floor", 128), ("punk", 140), ("breakbeat", 150),
    ("drum & bass", 160), ("punk", 170), ("drum & bass", 174), ("metal double kick", 180), ("rock", 186),
    ("punk", 190), ("four on the floor", 200), ("kick + snare", 210), ("metal double kick", 165),
    ("rock", 176), ("punk", 196), ("breakbeat", 170),
]
#: tempo changes: (style a, bpm a, style b, bpm b), the cut at 1 s + 20 s
CHANGES: list[tuple[str, float, str, float]] = [
    ("rock", 120, "punk", 180), ("drum & bass", 174, "four on the floor", 128),
]


def tempo_class(bpm: float) -> str:
    return "60-90" if bpm < 92 else "95-150" if bpm < 155 else "160-210"


def _read(path: Path) -> np.ndarray:
    import soundfile as sf
    import soxr

    x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    return soxr.resample(x, sr, SR).astype(np.float32) if sr != SR else x


def load_kit(name: str) -> dict[str, np.ndarray]:
    """The role -> sample map of a Hydrogen kit (the first layer of the first matching instrument)."""
    root = KITS / name
    tree = ET.parse(root / "drumkit.xml")
    ns = re.match(r"\{.*\}", tree.getroot().tag)
    pre = ns.group(0) if ns else ""
    out: dict[str, np.ndarray] = {}
    insts = []
    for inst in tree.getroot().iter(f"{pre}instrument"):
        nm = (inst.findtext(f"{pre}name") or "").strip().lower()
        fn = inst.findtext(f"{pre}filename") or next(
            (f.text for f in inst.iter(f"{pre}filename") if f.text), None)
        if nm and fn and (root / fn).is_file():
            insts.append((nm, root / fn))
    for role, pat in ROLES.items():
        for nm, fn in insts:
            if re.search(pat, nm) and not (role == "hat" and "open" in nm):
                out[role] = _read(fn)
                break
    if "clap" not in out and "snare" in out:
        out["clap"] = out["snare"]
    if "open" not in out and "hat" in out:
        out["open"] = out["hat"]
    for r in ("crash", "ride"):
        if r not in out and "hat" in out:
            out[r] = out["hat"]
    peak = max(float(np.max(np.abs(v))) for v in out.values())
    return {k: v / peak for k, v in out.items()}


def _place(out: np.ndarray, x: np.ndarray, t: float, gain: float) -> None:
    i = int(round(t * SR))
    if i >= len(out):
        return
    j = min(len(out), i + len(x))
    out[i:j] += gain * x[: j - i]


def drums(kit: dict[str, np.ndarray], style: str, bpm: float, t0: float, t1: float,
          rng: np.random.Generator, out: np.ndarray) -> np.ndarray:
    """Sequence ``style`` from ``t0`` to ``t1`` into ``out``; returns the beat times."""
    period = 60.0 / bpm
    steps = 12 if style in TRIPLET else 16
    step_s = 4 * period / steps
    beats = np.arange(t0, t1 - 1e-6, period)
    bar_s = 4 * period
    for b0 in np.arange(t0, t1 - 1e-6, bar_s):
        for role, pos, vel in STYLES[style]:
            if role not in kit:
                continue
            for p in pos:
                t = b0 + p * step_s
                if t >= t1:
                    continue
                v = vel * rng.uniform(0.8, 1.0) * (1.15 if p % (steps // 4) == 0 else 1.0)
                _place(out, kit[role], t + rng.normal(0, 0.004), v)
    return beats


def _midi_band(bpm: float, bars: int, style: str, rng: np.random.Generator, path: Path) -> None:
    """Bass on the eighths and chords (piano, organ or guitar) on a seeded four-bar progression."""
    import mido

    mid = mido.MidiFile(ticks_per_beat=480)
    tr = mido.MidiTrack()
    mid.tracks.append(tr)
    tr.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm)))
    chord_prog = int(rng.choice([0, 4, 16, 29, 30, 48, 81]))
    tr.append(mido.Message("program_change", channel=0, program=int(rng.choice([33, 34, 38]))))
    tr.append(mido.Message("program_change", channel=1, program=chord_prog))
    roots = [int(r) for r in rng.choice([33, 36, 38, 40, 41, 43, 45], size=4)]
    events: list[tuple[int, mido.Message]] = []
    eighth = 240 if style not in TRIPLET else 320
    for bar in range(bars):
        r = roots[bar % 4]
        t0 = bar * 4 * 480
        for k in range(0, 4 * 480, eighth):
            note = r + (12 if (k // eighth) % 4 == 3 else 0)
            events += [(t0 + k, mido.Message("note_on", channel=0, note=note, velocity=90)),
                       (t0 + k + eighth - 30, mido.Message("note_off", channel=0, note=note))]
        chord = [r + 24, r + 28 if rng.random() < 0.6 else r + 27, r + 31]
        hits = (0, 2 * 480) if style not in ("four on the floor", "disco") else (240, 720, 1200, 1680)
        dur = 900 if len(hits) == 2 else 200
        for h in hits:
            for n in chord:
                events += [(t0 + h, mido.Message("note_on", channel=1, note=n, velocity=70)),
                           (t0 + h + dur, mido.Message("note_off", channel=1, note=n))]
    events.sort(key=lambda e: (e[0], e[1].type == "note_on"))
    last = 0
    for t, m in events:
        tr.append(m.copy(time=t - last))
        last = t
    mid.save(str(path))


def band(bpm: float, seconds: float, style: str, rng: np.random.Generator) -> np.ndarray:
    """Bass + chords rendered by FluidSynth (zeros without fluidsynth or a GM SoundFont)."""
    sf2 = next((p for p in SF2S if p.exists()), None)
    exe = shutil.which("fluidsynth")
    n = int(seconds * SR)
    if sf2 is None or exe is None:
        return np.zeros(n, np.float32)
    import soundfile as sf

    bars = int(np.ceil(seconds * bpm / 240)) + 1
    with tempfile.TemporaryDirectory() as td:
        mp, wp = Path(td) / "b.mid", Path(td) / "b.wav"
        _midi_band(bpm, bars, style, rng, mp)
        subprocess.run([exe, "-ni", "-q", "-g", "0.6", "-r", str(SR), "-F", str(wp), str(sf2), str(mp)],
                       check=True, capture_output=True, timeout=120)
        x, _ = sf.read(str(wp), dtype="float32", always_2d=True)
    x = x.mean(axis=1)[:n]
    return np.pad(x, (0, n - len(x)))


@dataclass
class Item:
    name: str
    audio: np.ndarray
    beats: np.ndarray
    bpm: float  #: the tempo (of the second half for a tempo change)
    change_t: float | None = None  #: time of a tempo change


def build(seconds: float = 30.0, seed: int = 0) -> list[Item]:
    """The whole set, deterministic for ``seed``."""
    kits = [k for k in DRUM_KITS if (KITS / k / "drumkit.xml").is_file()]
    if not kits:
        raise SystemExit(f"no Hydrogen drum kits under {KITS} (Debian: hydrogen-drumkits)")
    loaded = {k: load_kit(k) for k in kits}
    items: list[Item] = []
    rng = np.random.default_rng(seed)
    for i, (style, bpm) in enumerate(ITEMS):
        kit = kits[i % len(kits)]
        out = np.zeros(int((LEAD_S + seconds) * SR), np.float32)
        beats = drums(loaded[kit], style, bpm, LEAD_S, LEAD_S + seconds, rng, out)
        d = out / max(1e-6, float(np.max(np.abs(out))))
        if i % 4 != 3:  # every fourth item: drums alone (a drum intro)
            b = band(bpm, seconds, style, rng)
            d[int(LEAD_S * SR):] += 0.5 * b / max(1e-6, float(np.max(np.abs(b))))
        items.append(Item(f"{bpm:g} {style} ({kit}{'' if i % 4 != 3 else ', drums only'})",
                          (0.5 * d / float(np.max(np.abs(d)))).astype(np.float32), beats, bpm))
    for j, (sa, ba, sb, bb) in enumerate(CHANGES):
        kit_a, kit_b = kits[(j * 3) % len(kits)], kits[(j * 3 + 1) % len(kits)]
        out = np.zeros(int((LEAD_S + seconds + 10) * SR), np.float32)
        cut = LEAD_S + 20.0
        b1 = drums(loaded[kit_a], sa, ba, LEAD_S, cut, rng, out)
        b2 = drums(loaded[kit_b], sb, bb, cut, LEAD_S + seconds + 10, rng, out)
        items.append(Item(f"change {ba:g} {sa} -> {bb:g} {sb}",
                          (0.5 * out / np.max(np.abs(out))).astype(np.float32),
                          np.concatenate([b1, b2]), bb, change_t=cut))
    return items


def main(argv: list[str] | None = None) -> int:
    import soundfile as sf

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("cache/beatset"))
    ap.add_argument("--seconds", type=float, default=30.0)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    meta = []
    for k, it in enumerate(build(args.seconds)):
        fn = f"{k:02d}.wav"
        sf.write(args.out / fn, it.audio, SR, subtype="PCM_16")
        meta.append({"file": fn, "name": it.name, "bpm": it.bpm, "beats": it.beats.round(6).tolist(),
                     "change_t": it.change_t})
    (args.out / "beats.json").write_text(json.dumps(meta, indent=1))
    print(f"{len(meta)} items in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
