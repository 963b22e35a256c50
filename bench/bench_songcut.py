"""The live song-change detector (mer_live/live/songcut.py) on hard cuts and crossfades.

    python -m bench.bench_songcut [--pairs 160] [--folds 5] [--show] [--no-record]

Why: the estimator acts on a detected cut (the model hears only the new song, the teacher forgets,
the smoother jumps), so a detection must come fast (within ~1.5 s of the cut, while the model's
window still holds mostly the last song) and rarely inside a song (each false one makes the model
read ~2 s of the song as the whole). This measures both, and the detector's cost per hop.

Tuning set: hard cuts synthesised from 4Q clips (../shared/data/4q), whole clips A -> B at the
show's level (-20 dBFS RMS, +-3 dB drawn per clip), B of another artist; the artists of
bench_show's seed-0 show are left out, and the threshold is chosen by artist-grouped folds: on
the other folds, the highest hit rate with at most ``--max-false`` false detections per minute;
scored on the held-out fold. A hit: a detection within ``HIT_S`` after the cut whose ``cut_at``
is within ``AT_S`` of it. False: any other detection (inside clips, and inside 4-s crossfades
counted apart). ``--show``: the chosen threshold on bench_show's show (seed 0): its hard cuts,
crossfades, songs, and between songs. ``--readings``: how often the model reads a song's first
1-4 s (repeated to fill its window) in the quadrant it reads the song's first whole window in.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from dataclasses import replace

import numpy as np
import soundfile as sf

from bench.common import SHARED_DATA, md_table, record, run_cli
from mer_live.live.songcut import CutConfig, CutDetector

RATE = 16000  # the default model's rate: the estimator feeds the detector model-rate audio
HOP = 1600
HIT_S = 1.6
AT_S = 0.5
THRESHOLDS = (3.0, 3.5, 4.0, 4.5, 5.0, 5.5, 6.0, 7.0, 8.0, 10.0)


def load(song: str) -> np.ndarray:
    import soxr

    from bench.bench_show import _trim

    x, sr = sf.read(str(SHARED_DATA / "4q" / "audio" / f"{song}.mp3"), dtype="float32", always_2d=True)
    return _trim(soxr.resample(x.mean(axis=1), sr, RATE).astype(np.float32), RATE)  # as the show cuts


def at_db(x: np.ndarray, db: float) -> np.ndarray:
    y = x * (10 ** (db / 20) / (np.sqrt(np.mean(x.astype(np.float64) ** 2)) + 1e-12))
    return np.clip(y, -1, 1).astype(np.float32)


def peaks(x: np.ndarray, config: CutConfig) -> list[tuple[float, float, float]]:
    """Every candidate the detector would fire on at any threshold (time, score, cut_at), in order,
    fed hop by hop as the estimator does."""
    det = CutDetector(RATE, replace(config, threshold=1e-6, refractory_s=1e-6))
    out = []
    for k in range(0, len(x) - HOP + 1, HOP):
        det.update(x[k : k + HOP])
        if det.detections > len(out):  # peaks at one hop: the last one
            out.extend([(np.nan, np.nan, np.nan)] * (det.detections - len(out) - 1))
            out.append(((k + HOP) / RATE, det.last_peak, det.cut_at / RATE))
    return [p for p in out if np.isfinite(p[0])]


def fire(cands: list[tuple[float, float, float]], thr: float, refractory: float) -> list[tuple[float, float]]:
    """The detections at ``thr`` (time, cut_at), with the refractory time applied."""
    out, last = [], -np.inf
    for t, s, at in cands:
        if s >= thr and t - last >= refractory:
            out.append((t, at))
            last = t
    return out


def judge(dets: list[tuple[float, float]], cuts: list[float], fades: list[tuple[float, float]]):
    """(hits, delays of the hits, false inside songs, false inside crossfades)."""
    hits, delays, false, false_fade = 0, [], 0, 0
    used = set()
    for t, at in dets:
        c = next((c for c in cuts if 0 <= t - c <= HIT_S and abs(at - c) <= AT_S and c not in used), None)
        if c is not None:
            used.add(c)
            hits += 1
            delays.append(t - c)
        elif any(lo <= t <= hi + HIT_S for lo, hi in fades):
            false_fade += 1
        else:
            false += 1
    return hits, delays, false, false_fade


def streams(pairs: int, folds: int, seed: int):
    """(fold, audio, cut times, crossfade spans) per synthesised stream; artists of the show out."""
    from bench.bench_show import SR, fourq_songs

    show_songs = {s.song_id for s in fourq_songs(SR, 0)}
    rows = list(csv.DictReader(open(SHARED_DATA / "4q" / "labels.csv", newline="", encoding="utf-8")))
    show_artists = {r["artist"] for r in rows if r["song"] in show_songs}
    rows = [r for r in rows if r["artist"] not in show_artists]
    artists = sorted({r["artist"] for r in rows})
    rng = np.random.default_rng(seed)
    fold_of = {a: i % folds for i, a in enumerate(rng.permutation(artists))}
    out = []
    for f in range(folds):
        cand = [r for r in rows if fold_of[r["artist"]] == f]
        for k in range(pairs // folds):
            i = rng.integers(len(cand))
            j = rng.integers(len(cand))
            while cand[j]["artist"] == cand[i]["artist"]:
                j = rng.integers(len(cand))
            a = at_db(load(cand[i]["song"]), -20 + rng.uniform(-3, 3))
            b = at_db(load(cand[j]["song"]), -20 + rng.uniform(-3, 3))
            if k % 4 == 3:  # one in four a 4-s crossfade: no cut to find, nothing should fire
                n = 4 * RATE
                ramp = np.linspace(0, 1, n, dtype=np.float32)
                x = np.concatenate([a[:-n], a[-n:] * (1 - ramp) + b[:n] * ramp, b[n:]])
                out.append((f, x, [], [((len(a) - n) / RATE, len(a) / RATE)]))
            else:
                out.append((f, np.concatenate([a, b]), [len(a) / RATE], []))
    return out


def choose(rows, thr_list, max_false: float, refractory: float):
    """The threshold with the most hits at <= max_false false detections per minute (songs and
    fades); of equals, the one with the fewest false detections."""
    best = None
    for thr in thr_list:
        h = n = fa = 0
        mins = 0.0
        for _f, cands, cuts, fades, dur in rows:
            hits, _d, false, ff = judge(fire(cands, thr, refractory), cuts, fades)
            h, n, fa, mins = h + hits, n + len(cuts), fa + false + ff, mins + dur / 60
        if fa / mins <= max_false and (best is None or (h, -fa) > best[1]):  # most hits, then fewest false
            best = (thr, (h, -fa))
    return best[0] if best else max(thr_list)


def cost_per_hop(config: CutConfig) -> float:
    """Microseconds per hop (0.1 s of 16-kHz audio), median of 5 runs over 60 s of noise."""
    x = np.random.default_rng(0).normal(0, 0.1, 60 * RATE).astype(np.float32)
    runs = []
    for _ in range(5):
        det = CutDetector(RATE, config)
        t0 = time.perf_counter()
        for k in range(0, len(x) - HOP + 1, HOP):
            det.update(x[k : k + HOP])
        runs.append((time.perf_counter() - t0) / (len(x) // HOP) * 1e6)
    return float(np.median(runs))


def cnn_ms() -> float:
    """The default model's time per window (ms, median of 30), for scale: it runs every hop."""
    from mer_live.inference.model import Model, default_model_path

    model = Model(default_model_path(), provider="cpu", threads=1)
    x = np.random.default_rng(0).normal(0, 0.1, (1, int(model.card.window_samples))).astype(np.float32)
    for _ in range(3):
        model.predict(x)
    ts = []
    for _ in range(30):
        t0 = time.perf_counter()
        model.predict(x)
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts) * 1e3)


def show_rows(config: CutConfig) -> tuple[list, dict]:
    """The detector on bench_show's show (seed 0, resampled to the model rate)."""
    import soxr

    from bench.bench_show import SR, build_show

    show = build_show(0, [])
    x = soxr.resample(show.audio, SR, RATE).astype(np.float32)
    cands = peaks(x, config)
    dets = fire(cands, config.threshold, config.refractory_s)
    songs = [g for g in show.segments if g.music]
    cuts = [g.change_t for g in songs if g.change == "cut"]
    fades = [(g.change_t - 2.0, g.change_t + 2.0) for g in songs if g.change == "crossfade"]
    hits, delays, false, ff = judge(dets, cuts, fades)
    between = [g for g in show.segments if not g.music]
    in_between = sum(1 for t, _ in dets if any(g.start <= t < g.end + 1.0 for g in between))
    after = [g.change_t for g in songs if g.change.startswith("after")]
    at_start = sum(1 for t, _ in dets if any(0 <= t - a <= 3.0 for a in after))
    false_songs = false - in_between - at_start
    song_min = sum(g.end - g.start for g in songs) / 60
    return [["bench_show seed 0 (scored, not tuned on)", f"{hits}/{len(cuts)}",
             f"{np.median(delays):.1f} / {max(delays):.1f}" if delays else "-",
             f"{false_songs / song_min:.2f} ({false_songs} in {song_min:.1f} min)",
             f"{ff} of {len(fades)}", f"between songs {in_between}, as music starts {at_start}"]], {
        "hits": hits, "cuts": len(cuts), "false_per_min": false_songs / song_min}


def early_readings(clips: int = 60, seed: int = 5) -> str:
    """How often the default model's quadrant on a song's first L seconds, repeated to fill its
    window (what the estimator does after a found cut), equals its quadrant on the first whole
    window (what the song alone reads first): the ceiling of a fast settle after a found cut."""
    from mer_live.inference.model import Model, default_model_path

    model = Model(default_model_path(), provider="cpu", threads=1)
    w = int(model.card.window_samples)
    rows = list(csv.DictReader(open(SHARED_DATA / "4q" / "labels.csv", newline="", encoding="utf-8")))
    rng = np.random.default_rng(seed)
    lengths = (1.0, 1.5, 2.0, 3.0, 4.0)
    agree: dict[float, list[bool]] = {L: [] for L in lengths}

    def quad(x: np.ndarray) -> int:
        a, v = model.predict(x[None, :w].astype(np.float32))[0]
        return (1 if v >= 0.5 else 2) if a >= 0.5 else (4 if v >= 0.5 else 3)

    for i in rng.permutation(len(rows))[:clips]:
        x = at_db(load(rows[i]["song"]), -20)
        if len(x) < w + RATE:
            continue
        x = x[int(rng.integers(0, RATE)) :]  # the song starts anywhere in its first second
        whole = quad(x[:w])
        for L in lengths:
            f = x[: int(L * RATE)]
            agree[L].append(quad(np.tile(f, -(-w // len(f)))[-w:]) == whole)
    return md_table(["heard of the new song (s)", "quadrant as its first whole window", "clips"],
                    [[f"{L:g}", f"{100 * np.mean(v):.0f} %", str(len(v))] for L, v in agree.items()])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=160)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-false", type=float, default=0.6, help="false detections per minute allowed")
    ap.add_argument("--show", action="store_true", help="also score on bench_show's show (seed 0)")
    ap.add_argument("--readings", action="store_true",
                    help="also: the model's quadrant on a song's first seconds vs its first whole window")
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args(argv)
    if not (SHARED_DATA / "4q" / "labels.csv").is_file():
        print("error: ../shared/data/4q not found", file=sys.stderr)
        return 2
    base = CutConfig()
    data = streams(args.pairs, args.folds, args.seed)
    rows = [(f, peaks(x, base), cuts, fades, len(x) / RATE) for f, x, cuts, fades in data]
    table = []
    tot = {"h": 0, "n": 0, "fs": 0, "ff": 0, "nf": 0, "min": 0.0, "d": []}
    chosen = []
    for f in range(args.folds):
        thr = choose([r for r in rows if r[0] != f], THRESHOLDS, args.max_false, base.refractory_s)
        chosen.append(thr)
        test = [r for r in rows if r[0] == f]
        h = n = fs = ff = nf = 0
        mins, dl = 0.0, []
        for _f, cands, cuts, fades, dur in test:
            hits, d, false, fff = judge(fire(cands, thr, base.refractory_s), cuts, fades)
            h, n, fs, ff, nf = h + hits, n + len(cuts), fs + false, ff + fff, nf + len(fades)
            mins += dur / 60
            dl += d
        table.append([f"fold {f} (threshold {thr:g})", f"{h}/{n}",
                      f"{np.median(dl):.1f} / {max(dl):.1f}" if dl else "-", f"{fs / mins:.2f}",
                      f"{ff} of {nf}", ""])
        for k, v in (("h", h), ("n", n), ("fs", fs), ("ff", ff), ("nf", nf), ("min", mins)):
            tot[k] += v
        tot["d"] += dl
    table.append(["all held-out folds", f"{tot['h']}/{tot['n']} ({100 * tot['h'] / tot['n']:.0f} %)",
                  f"{np.median(tot['d']):.1f} / {max(tot['d']):.1f}", f"{tot['fs'] / tot['min']:.2f}",
                  f"{tot['ff']} of {tot['nf']}", f"{tot['min']:.0f} min of audio"])
    sweep = []
    for thr in THRESHOLDS:
        h = n = fs = ff = 0
        mins = 0.0
        for _f, cands, cuts, fades, dur in rows:
            hits, _d, false, fff = judge(fire(cands, thr, base.refractory_s), cuts, fades)
            h, n, fs, ff, mins = h + hits, n + len(cuts), fs + false, ff + fff, mins + dur / 60
        sweep.append([f"{thr:g}", f"{h}/{n}", f"{fs / mins:.2f}", f"{ff}"])
    us = cost_per_hop(base)
    text = md_table(["held out", "cuts hit (<= 1.6 s)", "delay median / worst (s)", "false / min in songs",
                     "crossfades fired", "note"], table)
    text += "\n\n" + md_table(["threshold (all folds)", "cuts hit", "false / min", "crossfades fired"], sweep)
    if args.show:
        srows, _ = show_rows(base)
        text += "\n\n" + md_table(["show", "cuts hit", "delay median / worst (s)", "false / min in songs",
                                    "crossfades fired", "note"], srows)
    if args.readings:
        text += "\n\n" + early_readings()
    text += (f"\n\ncost: {us:.0f} us per 0.1-s hop (median of 5 x 60 s); the default emotion model, "
             f"which runs every hop: {cnn_ms():.2f} ms per window (same host, same run)")
    print(text)
    if not args.no_record:
        record("bench_songcut: the live song-change detector on synthesised 4Q cuts", text,
               [f"{args.pairs} streams (A -> B whole 4Q clips, one in four a 4-s crossfade), {args.folds} "
                f"artist-grouped folds, bench_show seed 0's artists left out; thresholds chosen per fold "
                f"{chosen} at <= {args.max_false} false/min; CutConfig {base}",
                "the host was shared with other jobs: the cost per hop is indicative only"])
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
