"""Beat tracking accuracy: BeatTracker's tempo and beats against known beats.

    python -m bench.bench_beat [--seconds 40] [--block-ms 10] [--midi 36] [--no-midi]

Metrics per track (after mir_eval's usual trim of the first 5 s): beat F-measure (mir_eval's
standard definition, +-70 ms window) of the published beats; tempo = the published (smoothed)
BPM at the end, counted correct within 2 % of the truth (Acc1) or within 2 % of half, the same
or double (Acc2: the octave is ambiguous for people too). Per set: median F and its quartiles,
Acc1 and Acc2 shares. CPU time of the tracker per second of audio is reported as well.

(a) Synthetic grooves (tests/grooves.py) at 70-180 BPM: plain, swing 0.2 and 1/3 (shuffle),
fills, without bass, four on the floor; 48 kHz, fed in ``--block-ms`` blocks.

(b) MIDI rendered with FluidSynth (J800 piano SoundFont, 44.1 kHz). The true beats come from the
MIDI's tempo map and time signature (mido) -- but only where the notes follow that grid: all
VGMIDI phrases and EMOPIA clips carry a nominal 120 BPM 4/4 header, and most are performances
whose notes do not sit on it. A file counts as grid-true when >= 90 % of its note onsets lie
within 15 ms of its sixteenth or eighth-triplet grid; only those are scored (the counts are
reported). Each grid-true phrase is rendered at its own tempo and again with its tempo rewritten
to a seeded random tempo in 70-180 BPM (the grid scales with it).
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bench.common import ROOT, SHARED_DATA, md_table, positive_float, positive_int, record, run_cli
from mer_live.analysers.beat import BEAT_TRACKERS, BeatConfig, make_tracker
from tests.grooves import groove

CACHE = ROOT / "cache" / "bench-beat"


def run_tracker(x: np.ndarray, sr: int, block_s: float, cfg: BeatConfig | None = None
                ) -> tuple[np.ndarray, float, float]:
    """(published beat times, final published bpm, CPU seconds) for audio ``x``."""
    bt = make_tracker(cfg or BeatConfig(tracker="aubio"))
    bt.reset(sr)
    blk = max(1, int(round(block_s * sr)))
    beats: list[float] = []
    c0 = time.thread_time()
    for i in range(0, len(x), blk):
        b = x[i:i + blk]
        for e in bt.process(b, (i + len(b) - 1) / sr, 0.0):
            if e.kind == "beat":
                beats.append(e.t)
    return np.array(beats), bt.state().bpm, time.thread_time() - c0


def evaluate(ref: np.ndarray, est: np.ndarray, bpm: float, true_bpm: float) -> tuple[float, bool, bool]:
    import mir_eval

    f = mir_eval.beat.f_measure(mir_eval.beat.trim_beats(ref), mir_eval.beat.trim_beats(est))
    acc1 = bpm > 0 and abs(bpm / true_bpm - 1) <= 0.02
    acc2 = bpm > 0 and any(abs(bpm / (true_bpm * k) - 1) <= 0.02 for k in (0.5, 1.0, 2.0))
    return float(f), bool(acc1), bool(acc2)


def summary(name: str, res: list[tuple[float, bool, bool]], cpu: float, audio_s: float) -> list[object]:
    f = np.array([r[0] for r in res])
    return [name, len(res), f"{np.median(f):.3f}", f"{np.percentile(f, 25):.3f}-{np.percentile(f, 75):.3f}",
            f"{f.min():.3f}", f"{100 * np.mean([r[1] for r in res]):.0f} %",
            f"{100 * np.mean([r[2] for r in res]):.0f} %", f"{100 * cpu / audio_s:.2f} %"]


# ----------------------------------------------------------------------------- MIDI


def onset_times(mid) -> np.ndarray:
    t, out = 0.0, []
    for msg in mid:  # iterating a MidiFile yields messages with delta times in seconds
        t += msg.time
        if msg.type == "note_on" and msg.velocity > 0:
            out.append(t)
    return np.array(out)


def grid_fraction(onsets: np.ndarray, beat_s: float, tol: float = 0.015) -> float:
    """Share of onsets within ``tol`` of the sixteenth or the eighth-triplet grid of ``beat_s``."""
    if len(onsets) == 0:
        return 0.0
    best = 0.0
    for div in (4, 3, 6):
        g = beat_s / div
        best = max(best, float(np.mean(np.abs(onsets / g - np.round(onsets / g)) * g < tol)))
    return best


def beat_times(mid) -> np.ndarray:
    """Beat times (s) from the tempo map and time signatures: one beat per denominator note (a
    dotted quarter in 6/8, 9/8, 12/8), from tick 0 to the last note."""

    tpb = mid.ticks_per_beat
    tempo_map: list[tuple[int, int]] = []  # (tick, us per quarter)
    sigs: list[tuple[int, int, int]] = []  # (tick, numerator, denominator)
    last_note = 0
    for tr in mid.tracks:
        tick = 0
        for msg in tr:
            tick += msg.time
            if msg.type == "set_tempo":
                tempo_map.append((tick, msg.tempo))
            elif msg.type == "time_signature":
                sigs.append((tick, msg.numerator, msg.denominator))
            elif msg.type == "note_on" and msg.velocity > 0:
                last_note = max(last_note, tick)
    tempo_map = sorted(tempo_map) or [(0, 500000)]
    sigs = sorted(sigs) or [(0, 4, 4)]

    def beat_ticks(num: int, den: int) -> int:
        q = tpb * 4 // den
        return q * 3 if den == 8 and num in (6, 9, 12) else q

    ticks, tick, si = [], 0, 0
    while tick <= last_note:
        while si + 1 < len(sigs) and sigs[si + 1][0] <= tick:
            si += 1
        ticks.append(tick)
        tick += beat_ticks(sigs[si][1], sigs[si][2])
    return tick_seconds(np.array(ticks), tempo_map, tpb)


def tick_seconds(ticks: np.ndarray, tempo_map: list[tuple[int, int]], tpb: int) -> np.ndarray:
    """Seconds at each tick of a MIDI tempo map ``[(tick, us per quarter)]`` in the order its
    changes apply (120 BPM before the first; of changes at one tick the last wins)."""
    if not tempo_map or tempo_map[0][0] > 0:
        tempo_map = [(0, 500000), *tempo_map]
    starts = np.array([t for t, _ in tempo_map], dtype=np.int64)
    us = np.array([u for _, u in tempo_map], dtype=np.float64)
    at = np.concatenate([[0.0], np.cumsum(np.diff(starts) * us[:-1] / 1e6 / tpb)])  # each change's second
    k = np.searchsorted(starts, ticks, side="right") - 1
    return at[k] + (np.asarray(ticks) - starts[k]) * us[k] / 1e6 / tpb


def with_tempo(mid, bpm: float):
    """A copy of ``mid`` with every set_tempo message set to ``bpm``."""
    import mido

    new = mido.MidiFile(type=mid.type, ticks_per_beat=mid.ticks_per_beat)
    for tr in mid.tracks:
        nt = mido.MidiTrack()
        for msg in tr:
            nt.append(msg.copy(tempo=mido.bpm2tempo(bpm)) if msg.type == "set_tempo" else msg)
        new.tracks.append(nt)
    return new


def midi_set(zip_path: Path, sf2: Path, limit: int, block_s: float, cfg: BeatConfig | None = None,
             seed: int = 0) -> tuple[list, dict]:
    import mido
    import soundfile as sf

    from train.midi import render_midi

    rng = np.random.default_rng(seed)
    info = {"files": 0, "grid_true": 0}
    rows: dict[str, list] = {"own tempo": [], "rewritten tempo": []}
    cpu = {k: 0.0 for k in rows}
    audio = {k: 0.0 for k in rows}
    CACHE.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path) as z:
        names = sorted(n for n in z.namelist() if n.endswith(".mid") and "__MACOSX" not in n)
        chosen = []
        for n in names:
            info["files"] += 1
            try:
                mid = mido.MidiFile(file=io.BytesIO(z.read(n)))
            except (OSError, ValueError, EOFError):
                continue
            tempos = [m.tempo for tr in mid.tracks for m in tr if m.type == "set_tempo"] or [500000]
            if len(set(tempos)) == 1 and grid_fraction(onset_times(mid), tempos[0] / 1e6) >= 0.9:
                info["grid_true"] += 1
                chosen.append((n, mid, 60e6 / tempos[0]))
        for n, mid, own_bpm in tqdm(chosen[:limit], desc=zip_path.parent.name, file=sys.stderr):
            new_bpm = float(rng.uniform(70, 180))
            versions = (("own tempo", mid, own_bpm), ("rewritten tempo", with_tempo(mid, new_bpm), new_bpm))
            for kind, m, bpm in versions:
                stem = f"{zip_path.parent.name}-{Path(n).stem[:60]}-{bpm:.2f}".replace(" ", "_")
                wav = CACHE / f"{stem}.wav"
                if not wav.is_file():
                    with tempfile.TemporaryDirectory() as td:
                        mp = Path(td) / "x.mid"
                        m.save(str(mp))
                        render_midi(mp, sf2, wav, sr=44100)
                x, sr = sf.read(str(wav), dtype="float32")
                est, got_bpm, c = run_tracker(x, sr, block_s, cfg)
                ref = beat_times(m)
                rows[kind].append(evaluate(ref, est, got_bpm, bpm))
                cpu[kind] += c
                audio[kind] += len(x) / sr
    return [summary(f"{zip_path.parent.name}, {k}", v, cpu[k], audio[k]) for k, v in rows.items() if v], info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=positive_float, default=40.0, help="length of each synthetic groove")
    ap.add_argument("--block-ms", type=positive_float, default=10.0, help="block length fed to the tracker")
    ap.add_argument("--midi", type=positive_int, default=36, help="grid-true MIDI files per set (default 36)")
    ap.add_argument("--no-midi", action="store_true", help="synthetic grooves only")
    ap.add_argument("--beat-tracker", default="aubio", choices=BEAT_TRACKERS,
                    help="whose beats (default aubio, as this bench's earlier records)")
    args = ap.parse_args(argv)
    cfg = BeatConfig(tracker=args.beat_tracker)
    block_s = args.block_ms / 1000.0
    sr = 48000
    variants = {
        "plain": {},
        "swing 0.2": {"swing": 0.2},
        "shuffle (swing 1/3)": {"swing": 1 / 3},
        "fills": {"fills": True},
        "no bass": {"bass": False},
        "four on the floor": {"four_on_floor": True},
    }
    tempi = (70, 80, 90, 100, 110, 120, 128, 140, 150, 160, 174, 180)
    rows, per_tempo = [], []
    all_res: list = []
    cpu_all = audio_all = 0.0
    for vname, kw in tqdm(variants.items(), desc="grooves", file=sys.stderr):
        res, cpu, audio = [], 0.0, 0.0
        for k, bpm in enumerate(tempi):
            x, ref = groove(bpm, args.seconds, sr, seed=100 + k, **kw)
            est, got, c = run_tracker(x, sr, block_s, cfg)
            r = evaluate(ref, est, got, bpm)
            res.append(r)
            per_tempo.append((vname, bpm, got, r))
            cpu += c
            audio += len(x) / sr
        rows.append(summary(f"grooves: {vname}", res, cpu, audio))
        all_res += res
        cpu_all += cpu
        audio_all += audio
    rows.append(summary("grooves: all", all_res, cpu_all, audio_all))
    misses = [f"{v} {b}: {g:.1f}" for v, b, g, r in per_tempo if not r[1]]
    notes = [f"synthetic: {len(tempi)} tempi ({', '.join(map(str, tempi))} BPM) x {len(variants)} variants, "
             f"{args.seconds:g} s each, 48 kHz, {args.block_ms:g} ms blocks; tracker defaults "
             f"({BeatConfig(tracker=args.beat_tracker)})",
             "tempo misses (variant truth: published): " + ("; ".join(misses) if misses else "none")]
    if not args.no_midi:
        sf2 = SHARED_DATA / "soundfonts" / "J800_Piano.sf2"
        for zp in (SHARED_DATA / "vgmidi" / "phrases.zip", SHARED_DATA / "emopia" / "midis.zip"):
            if not zp.is_file() or not sf2.is_file():
                notes.append(f"{zp}: absent, skipped")
                continue
            r, info = midi_set(zp, sf2, args.midi, block_s, cfg)
            rows += r
            notes.append(f"{zp.parent.name}: {info['grid_true']} of {info['files']} files grid-true "
                         f"(>= 90 % of onsets within 15 ms of the 16th/triplet grid of the header tempo); "
                         f"{min(args.midi, info['grid_true'])} scored" + ("" if info["grid_true"] else
                         ": no ground truth (performances under a nominal 120 BPM header)"))
    body = md_table(["set", "tracks", "F median", "F quartiles", "F min", "tempo Acc1 (2 %)",
                     "Acc2 (octave ok)", "CPU / audio"], rows)
    record(f"bench_beat: {args.beat_tracker} tracker's tempo and beat F-measure", body, notes)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
