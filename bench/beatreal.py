"""A second beat-tracking set: real recordings and real-instrument music with known grids (issue #31).

Why: ``bench/beatset.py`` sequences Hydrogen drum samples in numpy; a tracker tuned on it may
still fail on played music. Every item here is music made by people, and its beat grid comes
from the music's own timing data, not from a tracker:

* **recorded songs** (``fretsonfire-songs-muldjord``, CC BY-SA 3.0; ``fretsonfire-songs-sectoid``,
  GPL): eight rock/metal songs, performed and recorded by the bands, shipped as multitrack Ogg
  (``song.ogg`` + ``guitar.ogg`` [+ ``rhythm.ogg``], mixed here) with the game's ``notes.mid``, whose tempo
  map is the grid the game's notes are played against (a chart off the audio by more than the
  game's +-70 ms window could not be played). A chart's zero need not be the audio's (the game has
  a delay setting), so each song's grid is moved to where its onsets put it (``check_grid`` over
  the whole song, net of the check's own bias on exact grids): the Sectoid songs by +23..+41 ms,
  the Muldjord songs by +2..+4 ms. After that every item's onset strength peaks within +-15 ms
  of its grid, and no other phase of the beat holds clearly more (>= 0.86 of the best);
* **tracker modules** (``pingus-data``, GPL-2; ``tecnoballz-data``, GPL-3+; ``njam-data``,
  GPL-2+): music played from recorded instrument samples, rendered by libopenmpt
  (``libopenmpt0``) through ctypes. The grid is exact: the time each pattern row starts is read
  from libopenmpt's position while rendering (64-sample steps, +-0.7 ms), and a beat is every
  rows-per-beat rows of a pattern, from the module's own highlight (IT) or 4 rows, doubled while
  that is over 210 BPM (speed-3 modules count eighths per 4 rows). Two modules whose strongest
  hits fall half a beat off that grid (area1-game.mod 0.51, gd-myla.it 0.75) are left out: their
  beat's phase is a matter of opinion;
* **MIDI songs** (``openttd-openmsx``, GPL-2): the drum channel played on the recorded samples of
  a Hydrogen kit (``hydrogen-drumkits``), the rest rendered by FluidSynth with the GM SoundFont;
  the grid is the MIDI tempo map's quarter notes;
* **tempo changes**: three hard cuts from one item to another after 20 s (the grid of each part).

Each item is 1 s of silence, then 40 s from a beat of the source (the first beat is at 1.0 s).

    python -m bench.beatreal --out cache/beatreal   # the rebuild command (WAVs + beats.json)

Nothing is downloaded or committed (cache/ is ignored); the packages come from Debian:
``apt-get install fretsonfire-songs-muldjord fretsonfire-songs-sectoid pingus-data tecnoballz-data
njam-data openttd-openmsx libopenmpt0 fluidsynth fluid-soundfont-gm hydrogen-drumkits``.
"""

from __future__ import annotations

import argparse
import ctypes as C
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from bench.beatset import KITS, LEAD_S, SF2S, SR, Item, _place, _read, load_kit

FOF = Path("/usr/share/games/fretsonfire/data/songs")
MODS = {"pingus": Path("/usr/share/games/pingus/data/music"),
        "tecnoballz": Path("/usr/share/games/tecnoballz/musics"), "njam": Path("/usr/share/games/njam/data")}
MSX = Path("/usr/share/games/openttd/baseset/openmsx")
SECONDS = 40.0
#: where ``check_grid`` finds the onsets of music whose grid is exact (the modules and MIDI songs:
#: -8..0 ms, median -5 ms): its spectral flux peaks a little before a hit's sample
CHECK_BIAS_S = -0.005

#: (folder under FOF, where to start in s): recorded songs with one tempo each
SONGS = [("sectoid/Feelings", 40), ("sectoid/Escape from chaosland", 30), ("sectoid/War of freedom", 30),
         ("sectoid/Metal madness", 30), ("muldjord/chaos_god", 30), ("muldjord/armygeddon", 30),
         ("muldjord/mutilated_mime", 30), ("muldjord/internal_degeneration", 30)]
#: (package, file, where to start in s): modules with one tempo in the excerpt
MODULES = [("pingus", "gd-matth.it", 5), ("pingus", "pingus-5.it", 10),
           ("pingus", "pingus-6.it", 10), ("pingus", "pingus-9.it", 10), ("pingus", "sorcerer.it", 10),
           ("pingus", "the_big_march_in_space.it", 20), ("pingus", "pingus-3.it", 10),
           ("tecnoballz", "tecno-winn.mod", 20), ("tecnoballz", "area2-game.mod", 10),
           ("tecnoballz", "in-game-music-1_reg.mod", 30),
           ("njam", "dali.xm", 10), ("njam", "satisfy.xm", 30)]
#: (file, where to start in s): MIDI songs, 60-210 BPM, 4/4
MIDIS = [("careless_perc_redfarn.mid", 20), ("ttsong_iv_imuh3.mid", 20), ("train_filled_with_cash.mid", 10),
         ("city_blues_redfarn.mid", 10), ("no_work_song_redfarn.mid", 20), ("say_what_redfarn.mid", 10),
         ("mighty_giant_run.mid", 20), ("run_for_your_life.mid", 30), ("flying_scotsman.mid", 20)]
#: GM drum note -> Hydrogen kit role
GM_DRUMS = {35: "kick", 36: "kick", 37: "snare", 38: "snare", 40: "snare", 39: "clap", 42: "hat",
            44: "hat", 46: "open", 49: "crash", 52: "crash", 55: "crash", 57: "crash", 51: "ride",
            53: "ride", 59: "ride"}
MIDI_KITS = ("ColomboAcousticDrumkit", "BJA_Pacific", "The Black Pearl 1.0", "Millo_MultiLayered2")


def _excerpt(x: np.ndarray, beats: np.ndarray, start: float, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """1 s of silence + ``seconds`` of ``x`` from the first beat at or after ``start``."""
    b0 = float(beats[beats >= start - 1e-6][0])
    i = int(round(b0 * SR))
    seg = x[i:i + int(seconds * SR)]
    seg = np.pad(seg, (0, int(seconds * SR) - len(seg)))
    out = np.concatenate([np.zeros(int(LEAD_S * SR), np.float32), seg]).astype(np.float32)
    sel = beats[(beats >= b0 - 1e-6) & (beats < b0 + seconds - 1e-6)]
    return 0.5 * out / max(1e-6, float(np.max(np.abs(out)))), sel - b0 + LEAD_S


def _tempo(beats: np.ndarray, last_s: float = 15.0) -> float:
    """The tempo of the last ``last_s`` of a grid (what Acc1/Acc2 compare against)."""
    b = beats[beats >= beats[-1] - last_s]
    return float(60.0 / np.median(np.diff(b)))


# --- recorded songs (Frets on Fire) ---------------------------------------------------------------

def midi_quarters(path: Path, until_s: float) -> np.ndarray:
    """The quarter-note times (s) of a MIDI file's tempo map up to ``until_s``."""
    import mido

    from bench.bench_beat import tick_seconds

    mid = mido.MidiFile(str(path))
    tempos = [(0, 500000)]
    for tr in mid.tracks:
        ab = 0
        for m in tr:
            ab += m.time
            if m.type == "set_tempo":
                tempos.append((ab, m.tempo))
    tempos.sort(key=lambda t: t[0])
    tpb = mid.ticks_per_beat
    # a quarter lasts at most 60 / 20 BPM: enough quarters to pass until_s, then cut there
    n = int(until_s * 20 / 60) + 2
    while True:
        t = tick_seconds(tpb * np.arange(n), tempos, tpb)
        if t[-1] >= until_s:
            return t[t < until_s]
        n *= 2


def song(folder: str, start: float) -> Item:
    d = FOF / folder
    parts = [_read(d / f"{p}.ogg") for p in ("song", "guitar", "rhythm") if (d / f"{p}.ogg").is_file()]
    n = max(len(p) for p in parts)
    x = sum(np.pad(p, (0, n - len(p))) for p in parts).astype(np.float32)
    beats = midi_quarters(d / "notes.mid", n / SR)
    # a chart's tick 0 need not be the audio's sample 0 (the game has a delay setting for that):
    # move the grid to where the song's onsets put it, net of the check's own reading of an
    # exact grid (CHECK_BIAS_S)
    shift, _ = check_grid(x, beats[beats < n / SR - 1])
    beats = beats + (shift - CHECK_BIAS_S)
    audio, b = _excerpt(x, beats, start, SECONDS)
    return Item(f"{_tempo(b):.0f} song {folder.split('/')[-1]}", audio, b, _tempo(b))


def check_grid(audio: np.ndarray, beats: np.ndarray) -> tuple[float, float]:
    """Where the music's onsets sit against the grid: the shift (s, within +-70 ms) of the grid that
    holds the most spectral-flux onset strength, and that strength over the best shift anywhere in
    a beat (1.0: no other phase holds more; ~0.5: the strongest hits lie off the grid's beats)."""
    hop = 128
    frames = np.lib.stride_tricks.sliding_window_view(audio, 1024)[::hop]
    mag = np.abs(np.fft.rfft(frames * np.hanning(1024), axis=1))
    flux = np.maximum(0, np.diff(np.log1p(100 * mag), axis=0)).sum(axis=1)
    t = (np.arange(len(flux)) + 1) * hop / SR + 512 / SR
    period = float(np.median(np.diff(beats)))
    offs = np.arange(-period / 2, period / 2, 0.005)
    score = np.array([np.mean(np.interp(beats + o, t, flux)) for o in offs])
    near = np.where(np.abs(offs) <= 0.07, score, -1.0)
    k = int(np.argmax(near))
    return float(offs[k]), float(score[k] / score.max())


# --- tracker modules (libopenmpt) -----------------------------------------------------------------

def _lib() -> C.CDLL:
    try:
        lib = C.CDLL("libopenmpt.so.0")
    except OSError as e:
        raise SystemExit(f"libopenmpt not found ({e}); Debian: apt-get install libopenmpt0") from None
    lib.openmpt_module_create_from_memory.restype = C.c_void_p
    lib.openmpt_module_create_from_memory.argtypes = [C.c_void_p, C.c_size_t, C.c_void_p, C.c_void_p,
                                                      C.c_void_p]
    for f in ("row", "order", "pattern"):
        fn = getattr(lib, f"openmpt_module_get_current_{f}")
        fn.argtypes, fn.restype = [C.c_void_p], C.c_int32
    lib.openmpt_module_set_repeat_count.argtypes = [C.c_void_p, C.c_int32]
    lib.openmpt_module_read_float_mono.argtypes = [C.c_void_p, C.c_int32, C.c_size_t, C.POINTER(C.c_float)]
    lib.openmpt_module_read_float_mono.restype = C.c_size_t
    lib.openmpt_module_destroy.argtypes = [C.c_void_p]
    return lib


def render_module(path: Path, seconds: float) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
    """Render ``seconds`` of a module (looping) and the start time and (pattern, row) of every row."""
    lib = _lib()
    data = path.read_bytes()
    mod = lib.openmpt_module_create_from_memory(data, len(data), None, None, None)
    if not mod:
        raise SystemExit(f"libopenmpt could not open {path}")
    lib.openmpt_module_set_repeat_count(mod, -1)
    step = 64
    n = int(seconds * SR)
    out = np.zeros(n, np.float32)
    buf = (C.c_float * step)()
    times: list[float] = []
    rows: list[tuple[int, int]] = []
    last = None
    pos = 0
    try:
        while pos < n:
            got = lib.openmpt_module_read_float_mono(mod, SR, step, buf)
            if got == 0:
                break
            out[pos:pos + got] = np.frombuffer(buf, np.float32, got)[: n - pos]
            cur = (lib.openmpt_module_get_current_order(mod), lib.openmpt_module_get_current_row(mod))
            if cur != last:  # the row started inside this step
                times.append((pos + got / 2) / SR)
                rows.append((lib.openmpt_module_get_current_pattern(mod), cur[1]))
                last = cur
            pos += got
    finally:
        lib.openmpt_module_destroy(mod)
    return out, np.array(times), rows


def rows_per_beat(path: Path) -> int:
    """The module's own beat highlight (IT header byte 0x1E), else the trackers' default 4."""
    head = path.read_bytes()[:0x20]
    return head[0x1E] if head[:4] == b"IMPM" and head[0x1E] > 0 else 4


def module(pkg: str, name: str, start: float) -> Item:
    path = MODS[pkg] / name
    x, times, rows = render_module(path, start + SECONDS + 2)
    rpb = rows_per_beat(path)
    while True:
        beats = np.array([t for t, (_, r) in zip(times, rows, strict=False) if r % rpb == 0])
        if 60 / np.median(np.diff(beats)) <= 212:
            break
        rpb *= 2
    audio, b = _excerpt(x, beats, start, SECONDS)
    return Item(f"{_tempo(b):.0f} module {name} ({rpb} rows/beat)", audio, b, _tempo(b))


# --- MIDI songs: Hydrogen drums + FluidSynth ---------------------------------------------------------

def midi_song(name: str, start: float, kit_name: str) -> Item:
    import mido
    import soundfile as sf

    path = MSX / name
    mid = mido.MidiFile(str(path))
    kit = load_kit(kit_name)
    total = mid.length
    drums = np.zeros(int((total + 3) * SR), np.float32)
    t = 0.0
    for m in mid:  # playback order; m.time in seconds
        t += m.time
        if m.type == "note_on" and m.velocity > 0 and m.channel == 9:
            role = GM_DRUMS.get(m.note)
            if role in kit:
                _place(drums, kit[role], t, (m.velocity / 127) ** 1.5)
    # the rest through FluidSynth, without the drum channel
    sf2 = next((p for p in SF2S if p.exists()), None)
    exe = shutil.which("fluidsynth")
    band = np.zeros_like(drums)
    if sf2 is not None and exe is not None:
        stripped = mido.MidiFile(ticks_per_beat=mid.ticks_per_beat, type=mid.type)
        for tr in mid.tracks:
            nt, carry = mido.MidiTrack(), 0
            for m in tr:
                if not m.is_meta and getattr(m, "channel", None) == 9:
                    carry += m.time
                    continue
                nt.append(m.copy(time=m.time + carry))
                carry = 0
            stripped.tracks.append(nt)
        with tempfile.TemporaryDirectory() as td:
            mp, wp = Path(td) / "b.mid", Path(td) / "b.wav"
            stripped.save(str(mp))
            subprocess.run([exe, "-ni", "-q", "-g", "0.6", "-r", str(SR), "-F", str(wp), str(sf2), str(mp)],
                           check=True, capture_output=True, timeout=300)
            y, _ = sf.read(str(wp), dtype="float32", always_2d=True)
        y = y.mean(axis=1)[: len(band)]
        band[: len(y)] = y
    x = (0.6 * drums / max(1e-6, float(np.max(np.abs(drums))))
         + 0.5 * band / max(1e-6, float(np.max(np.abs(band)))))
    beats = midi_quarters(path, total)
    audio, b = _excerpt(x, beats, start, SECONDS)
    return Item(f"{_tempo(b):.0f} midi {name} ({kit_name})", audio, b, _tempo(b))


def cut(a: Item, b: Item, at: float = 20.0) -> Item:
    """The first ``at`` s of ``a``, then ``b`` from its first beat (a DJ's hard cut on a beat)."""
    i = int((LEAD_S + at) * SR)
    rest = b.audio[int(LEAD_S * SR):]
    n = int((LEAD_S + SECONDS) * SR)
    audio = np.concatenate([a.audio[:i], rest])[:n]
    beats = np.concatenate([a.beats[a.beats < LEAD_S + at - 0.05], b.beats - LEAD_S + LEAD_S + at])
    beats = beats[beats < n / SR]
    return Item(f"change {a.name.split(' ')[0]} -> {b.name.split(' ')[0]}: {a.name} -> {b.name}",
                audio.astype(np.float32), beats, _tempo(beats[beats > LEAD_S + at]), change_t=LEAD_S + at)


def build() -> list[Item]:
    items: list[Item] = []
    missing = [str(p) for p in (FOF, *MODS.values(), MSX, KITS) if not p.is_dir()]
    if missing:
        raise SystemExit("missing (Debian packages, see the module doc): " + ", ".join(missing))
    for folder, start in SONGS:
        items.append(song(folder, start))
    for pkg, name, start in MODULES:
        items.append(module(pkg, name, start))
    kits = [k for k in MIDI_KITS if (KITS / k / "drumkit.xml").is_file()]
    for j, (name, start) in enumerate(MIDIS):
        items.append(midi_song(name, start, kits[j % len(kits)]))
    by = {it.name.split(" ", 2)[2].split(" (")[0]: it for it in items}
    items.append(cut(by["War of freedom"], by["mutilated_mime"]))
    items.append(cut(by["tecno-winn.mod"], by["pingus-9.it"]))
    items.append(cut(by["train_filled_with_cash.mid"], by["say_what_redfarn.mid"]))
    return items


def main(argv: list[str] | None = None) -> int:
    import soundfile as sf

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("cache/beatreal"))
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    meta = []
    for k, it in enumerate(build()):
        fn = f"{k:02d}.wav"
        sf.write(args.out / fn, it.audio, SR, subtype="PCM_16")
        shift, share = check_grid(it.audio, it.beats)
        meta.append({"file": fn, "name": it.name, "bpm": round(it.bpm, 3),
                     "beats": it.beats.round(6).tolist(), "change_t": it.change_t,
                     "onset_shift_s": round(shift, 3), "onset_share": round(share, 2)})
        print(f"{fn} {it.name[:70]:70s} onsets {1000 * shift:+4.0f} ms from the grid, "
              f"{share:.2f} of the best phase")
    (args.out / "beats.json").write_text(json.dumps(meta, indent=1))
    print(f"{len(meta)} items in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
