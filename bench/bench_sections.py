"""Section changes and drops: how often SectionDetector finds a song change, how often it cries wolf.

    python -m bench.bench_sections [--clips 716] [--tune 240] [--gap 0] [--block-ms 20]

(a) 4Q clips joined end to end (seeded random order, seed 0): each join is a known boundary. A
join is hit when a section event lies within 3 s of it; events farther than 3 s from every join
are counted per minute (they include real in-song changes: verse -> chorus, a break, which 4Q's
30-s clips contain, so this is an upper bound on false changes). A threshold sweep runs on the
first ``--tune`` clips (the tuning part) and the held-out rest is scored at each threshold, so the
default can be judged on clips it was not picked on. ``--gap`` puts seconds of silence between
clips (0: butt joins, the hard case).
(b) Synthetic steady grooves and pads (tests/grooves.py), 3 minutes each: any section or drop
is false. (c) Synthetic build -> drop tracks (tests/grooves.build_drop, 8 tempi x 3 seeds): a
drop event within 1 s of the drop is a hit. The 4Q stream's drop events are reported per minute.

Audio is decoded with soundfile at the clips' own rate (22,050 Hz mono) and fed in ``--block-ms``
blocks, as the pipeline would feed the device's blocks.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np
import soundfile as sf
from tqdm import tqdm

from bench.common import SHARED_DATA, md_table, positive_int, record, run_cli
from mer_live.analysers.sections import SectionConfig, SectionDetector
from tests.grooves import build_drop, groove, pad

HIT_S = 3.0
DROP_HIT_S = 1.0
THRESHOLDS = (0.3, 0.45, 0.6, 0.8, 1.0, 1.3)


def feed(x: np.ndarray, sr: int, cfg: SectionConfig, block_s: float) -> list:
    det = SectionDetector(cfg)
    det.reset(sr)
    blk = max(1, int(block_s * sr))
    events = []
    for i in range(0, len(x), blk):
        b = x[i:i + blk]
        events += det.process(b, (i + len(b) - 1) / sr, 0.0)
    return events


def score(events: list, joins: np.ndarray, minutes: float) -> tuple[float, float, int]:
    """(hit rate of joins, events away from joins per minute, events)."""
    t = np.array([e.t for e in events if e.kind == "section"])
    if len(joins) == 0:
        return float("nan"), len(t) / minutes, len(t)
    hits = np.mean([np.any(np.abs(t - j) <= HIT_S) for j in joins]) if len(t) else 0.0
    away = sum(1 for x in t if np.min(np.abs(joins - x)) > HIT_S)
    return float(hits), away / minutes, len(t)


def decode(path) -> tuple[np.ndarray, int]:
    x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return x.mean(axis=1), int(sr)


def join(clips: list[np.ndarray], sr: int, gap_s: float) -> tuple[np.ndarray, np.ndarray]:
    gap = np.zeros(int(gap_s * sr), dtype=np.float32)
    parts, joins, t = [], [], 0.0
    for k, c in enumerate(clips):
        if k:
            parts.append(gap)
            t += len(gap) / sr
            joins.append(t)  # the new clip starts here
        parts.append(c)
        t += len(c) / sr
    return np.concatenate(parts), np.array(joins)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=positive_int, default=716, help="4Q clips to join (default all 716)")
    ap.add_argument("--tune", type=positive_int, default=240, help="clips in the tuning part (default 240)")
    ap.add_argument("--gap", type=float, default=0.0, help="seconds of silence between clips (default 0)")
    ap.add_argument("--block-ms", type=float, default=20.0, help="block length fed to the detector (ms)")
    args = ap.parse_args(argv)
    base = SectionConfig()
    block_s = args.block_ms / 1000.0
    notes = [f"defaults: threshold {base.threshold}, kernel_s {base.kernel_s}, frame_s {base.frame_s}, "
             f"min_spacing_s {base.min_spacing_s}, drop_db {base.drop_db}; hit = event within {HIT_S:g} s "
             f"of a join; blocks of {args.block_ms:g} ms"]
    body = []

    # (a) 4Q joined
    paths = sorted((SHARED_DATA / "4q" / "audio").glob("*.mp3"))
    if not paths:
        print("error: 4Q audio not found under ../shared/data/4q/audio", file=sys.stderr)
        return 2
    rng = np.random.default_rng(0)
    paths = [paths[i] for i in rng.permutation(len(paths))[:args.clips]]
    with ThreadPoolExecutor(2) as ex:
        decoded = list(tqdm(ex.map(decode, paths), total=len(paths), desc="decode 4Q", file=sys.stderr))
    sr = decoded[0][1]
    if any(s != sr for _, s in decoded):
        print("error: 4Q clips at mixed rates", file=sys.stderr)
        return 2
    tune_n = min(args.tune, len(decoded) - 2)
    parts = {"tuning": [x for x, _ in decoded[:tune_n]], "held-out": [x for x, _ in decoded[tune_n:]]}
    rows = []
    drops_4q = {}
    for name, clips in parts.items():
        x, joins = join(clips, sr, args.gap)
        minutes = len(x) / sr / 60.0
        for th in tqdm(THRESHOLDS, desc=f"4Q {name}", file=sys.stderr):
            ev = feed(x, sr, replace(base, threshold=th), block_s)
            hit, away, n = score(ev, joins, minutes)
            rows.append([name, len(clips), len(joins), f"{minutes:.0f}", th, f"{100 * hit:.1f} %",
                         f"{away:.2f}", n])
            if th == base.threshold:
                drops_4q[name] = sum(e.kind == "drop" for e in ev) / minutes
    body.append(f"(a) 4Q clips joined end to end (gap {args.gap:g} s), seeded order; rows: threshold sweep\n")
    body.append(md_table(["part", "clips", "joins", "minutes", "threshold", "joins hit (<= 3 s)",
                          "other sections / min", "sections"], rows))
    body.append("\n4Q drop events per minute at the defaults: "
                + ", ".join(f"{k} {v:.2f}" for k, v in drops_4q.items()) + "\n")

    # (b) steady synthetic music
    srs = 48000
    steady = []
    for name, x in [("groove 96 BPM, fills", groove(96, 180, srs, fills=True, seed=11)[0]),
                    ("groove 128 BPM, swing 0.2, four on the floor",
                     groove(128, 180, srs, swing=0.2, four_on_floor=True, seed=12)[0]),
                    ("groove 174 BPM", groove(174, 180, srs, seed=13)[0]),
                    ("pad (chords every 1 s)", pad(180, srs, seed=14))]:
        ev = feed(x, srs, base, block_s)
        steady.append([name, 3, sum(e.kind == "section" for e in ev) / 3.0,
                       sum(e.kind == "drop" for e in ev) / 3.0])
    body.append("\n(b) steady synthetic music (48 kHz): every event is false\n")
    body.append(md_table(["track", "minutes", "sections / min", "drops / min"], steady))

    # (c) build -> drop
    hits, errs, n, extra = 0, [], 0, 0
    for bpm in (100, 110, 120, 126, 128, 135, 140, 150):
        for seed in range(3):
            x, t_drop = build_drop(srs, bpm=bpm, seed=seed, build_s=4.0 + 2 * seed)
            ev = [e for e in feed(x, srs, base, block_s) if e.kind == "drop"]
            n += 1
            near = [e.t - t_drop for e in ev if abs(e.t - t_drop) <= DROP_HIT_S]
            if near:
                hits += 1
                errs.append(abs(near[0]))
            extra += sum(1 for e in ev if abs(e.t - t_drop) > DROP_HIT_S)
    body.append(f"\n(c) synthetic build -> drop tracks (8 tempi 100-150 BPM x builds of 4/6/8 s, 48 kHz): "
                f"drops hit within {DROP_HIT_S:g} s: {hits}/{n}; |time error| median "
                f"{np.median(errs) if errs else float('nan'):.2f} s, "
                f"max {max(errs) if errs else float('nan'):.2f} s; other drop events: {extra}\n")
    record("bench_sections: section changes on joined 4Q clips, false events on steady music, drops",
           "\n".join(body), notes)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
