"""Counted bars against known bars: how often mer-live's beat 1 (counted from a song's first beat)
is the music's real downbeat.

    python -m bench.bench_bars [--block-ms 10]

Self-made grooves (tests/grooves.py: kick on 1 and 3, snare on 2 and 4; the bar starts on the
first beat of the file, 0.25 s in) at 12 tempi x 3 styles, 24 s each, fed in
blocks to ``BeatTracker`` and ``Bars`` as the pipeline does. A song is right when every beat 1 the
counter publishes (after the first 4 beats) lies within 70 ms of a true downbeat. This measures the
counting rule, not a downbeat detector: mer-live has none (docs/show.md says why).
"""

from __future__ import annotations

import argparse
import types

import numpy as np

from mer_live.analysers.bars import Bars
from mer_live.analysers.beat import BeatTracker
from tests.grooves import groove

SR = 44100
TEMPI = (70, 80, 90, 100, 110, 120, 126, 128, 135, 150, 165, 180)
STYLES = {"plain": {}, "swing": {"swing": 0.2}, "four on the floor": {"four_on_floor": True}}


def run_one(bpm: float, style: dict, block_s: float, seed: int) -> tuple[bool, int, int, float]:
    """(right, beat-1s published, beat-1s on a true downbeat, phase of the first beat-1 in beats)."""
    x, beats = groove(bpm, 24.0, SR, seed=seed, **style)
    downbeats = beats[::4]
    tracker = BeatTracker()
    tracker.reset(SR)
    bars = Bars(tracker)
    bars.reset(SR)
    bars(types.SimpleNamespace(music=True))
    n = int(block_s * SR)
    ones = []
    for i in range(0, len(x), n):
        blk = x[i:i + n]
        t_end = (i + len(blk)) / SR
        tracker.process(blk, t_end, t_end)
        ones += [e.t for e in bars.process(blk, t_end, t_end) if e.kind == "beat_in_bar" and e.count == 1]
    ones = [t for t in ones if t > beats[0] + 4 * 60.0 / bpm]
    hit = [t for t in ones if np.min(np.abs(downbeats - t)) <= 0.07]
    first = ((ones[0] - beats[0]) * bpm / 60.0) % 4 if ones else float("nan")
    return bool(ones) and len(hit) == len(ones), len(ones), len(hit), first


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--block-ms", type=float, default=10.0)
    a = ap.parse_args(argv)
    rows = []
    for name, style in STYLES.items():
        for k, bpm in enumerate(TEMPI):
            ok, n, hit, first = run_one(bpm, style, a.block_ms / 1000, seed=k)
            rows.append((name, bpm, ok, n, hit, first))
            print(f"{name:18s} {bpm:4d} BPM: {'right' if ok else 'off  '} {hit}/{n} beat-1s on a downbeat, "
                  f"first counted beat 1 at bar phase {first:.2f} beats", flush=True)
    right = sum(r[2] for r in rows)
    print(f"\ncounted beat 1 = true downbeat in {right} of {len(rows)} grooves "
          f"({100 * right / len(rows):.0f} %); beat-1 events on a downbeat: "
          f"{sum(r[4] for r in rows)} of {sum(r[3] for r in rows)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
