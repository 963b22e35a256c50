"""The hybrid beat tracker's pick, offline: aubio's path, BeatNet and the hybrid on both known-grid sets.

    python -m bench.bench_beat_pick [--sets beatset,beatreal] [--on 0.65] [--off 0.5] [--up 1] [--down 8]

Why: ``SourcePick`` (``mer_live/analysers/beatnet.py``) sends aubio's beats while the onset
envelope's periodicity score is high and BeatNet's elsewhere; this shows what that rests on, per
set: each tracker's mean F-measure, the hybrid's with the given setting, the better of the two per
item (an upper bound for any pick), the periodicity score per item, and how late each tracker
publishes its beats (the stream time of the block that sent a beat minus the beat's own time).
Each item goes through each tracker alone in 512-sample blocks (no pipeline, no gates: the live
path's numbers are bench_beatreal's and bench_beatset's), scored with ``bench_beatset.score``.
Prints, records nothing; docs/show.md "The hybrid tracker" cites it.
"""

from __future__ import annotations

import argparse
import json
from types import SimpleNamespace

import numpy as np

from bench.common import ROOT, md_table, run_cli

TRACKERS = ("aubio", "beatnet", "hybrid")


def run(tracker: str, x: np.ndarray, sr: int, pick: dict[str, float]
        ) -> tuple[list, list[float], list[float]]:
    """(beat events, publish delays in s, the periodicity score of each block from 2 s in)."""
    from mer_live.analysers.beat import BeatConfig, make_tracker
    from mer_live.analysers.beatnet import SourcePick

    tr = make_tracker(BeatConfig(tracker=tracker))
    tr.reset(sr)
    if tracker == "hybrid":
        tr.pick = SourcePick(**pick)
    beats, late, score = [], [], []
    for i in range(0, len(x) - 511, 512):
        t_end = (i + 512) / sr
        for ev in tr.process(x[i:i + 512], t_end, t_end):
            if ev.kind == "beat":
                beats.append(ev)
                late.append(t_end - ev.t)
        if t_end > 2.0:
            score.append(tr._per.score)
    return beats, late, score


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="beatset,beatreal",
                    help="folders under cache/ (built by bench.beatset, bench.beatreal)")
    ap.add_argument("--on", type=float, default=0.65)
    ap.add_argument("--off", type=float, default=0.5)
    ap.add_argument("--up", type=float, default=1.0, help="seconds: the smoothing's rise")
    ap.add_argument("--down", type=float, default=8.0, help="seconds: the smoothing's fall")
    args = ap.parse_args(argv)
    import soundfile as sf

    from bench.bench_beatset import score

    pick = dict(on=args.on, off=args.off, up_s=args.up, down_s=args.down)
    rows, late_rows = [], []
    for name in [s.strip() for s in args.sets.split(",") if s.strip()]:
        d = ROOT / "cache" / name
        meta = json.loads((d / "beats.json").read_text())
        f: dict[str, list[float]] = {t: [] for t in TRACKERS}
        late: dict[str, list[float]] = {t: [] for t in TRACKERS}
        combs = []
        for m in meta:
            x, sr = sf.read(str(d / m["file"]), dtype="float32")
            for t in TRACKERS:
                beats, lt, sc = run(t, x, sr, pick)
                sent = [(ev.t, SimpleNamespace(t=ev.t, bpm=ev.bpm)) for ev in beats]
                f[t].append(score(np.array(m["beats"]), sent, m["bpm"], m["change_t"])["f"])
                late[t] += lt
                if t == "hybrid":
                    combs.append(float(np.mean(sc)))
            print(f"{name} {m['name'][:50]:50s} comb {combs[-1]:.2f} "
                  + " ".join(f"{t} {f[t][-1]:.2f}" for t in TRACKERS), flush=True)
        best = np.maximum(f["aubio"], f["beatnet"])
        rows.append([name, len(meta), *(f"{np.mean(f[t]):.3f}" for t in TRACKERS), f"{np.mean(best):.3f}",
                     f"{min(combs):.2f}-{max(combs):.2f}"])
        for t in TRACKERS:
            ms = 1000 * np.array(late[t])
            late_rows.append([name, t, len(ms), f"{np.median(ms):.1f}", f"{np.percentile(ms, 90):.1f}",
                              f"{np.percentile(ms, 99):.1f}"])
    print(f"\nSourcePick({pick}); trackers alone in 512-sample blocks, no gates\n")
    print(md_table(["set", "items", "F aubio", "F BeatNet", "F hybrid", "F better of the two per item",
                    "periodicity score per item (min-max)"], rows))
    print()
    print(md_table(["set", "tracker", "beats", "publish delay ms median", "p90", "p99"], late_rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
