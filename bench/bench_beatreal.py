"""Beat tracking through the live path on the real-music set of ``bench/beatreal.py`` (issue #31).

    python -m bench.bench_beatreal [--set cache/beatreal] [--label after] [--no-record] [--json out.json]

The same live path and the same scores as ``bench/bench_beatset.py`` (F-measure +-70 ms, CMLt/AMLt,
Acc1/Acc2 with 2/3 and 3/2 as errors, time to the first beat sent after the first true beat,
seconds to follow a tempo change), per tempo class and per kind of source (recorded songs,
tracker modules, MIDI songs on a Hydrogen kit). Also the median offset (ms) of the beats sent
from the true beats they matched: a constant latency, which the +-70 ms window must absorb.

Why ``--offsets``: on recorded songs one item's result swings with where its audio falls on the
512-sample blocks and hops (the same song 3 ms later: F 0.20 -> 0.60, tempo 127 -> 95; the
tracker's octave, 3:2 and gate decisions are thresholds). Each item is played once per offset
(that much more silence before it, taken off again before scoring) and its scores are averaged
(Acc1/Acc2: the share of plays), so a before/after difference is not one roll of the dice.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace

import numpy as np

from bench.beatset import SR, tempo_class
from bench.bench_beatset import HEADER, class_rows, open_set, report, run_item, score, set_args, tracker_arg
from bench.common import ROOT, md_table, run_cli


def offset_ms(ref: np.ndarray, est: np.ndarray, window: float = 0.07) -> float:
    """Median signed error (ms) of the sent beats that lie within ``window`` of a true beat."""
    if not len(est) or not len(ref):
        return float("nan")
    idx = np.clip(np.searchsorted(ref, est), 1, len(ref) - 1)
    near = np.where(np.abs(est - ref[idx - 1]) < np.abs(est - ref[idx]), ref[idx - 1], ref[idx])
    d = est - near
    d = d[np.abs(d) <= window]
    return float(1000 * np.median(d)) if len(d) else float("nan")


def kind_of(name: str) -> str:
    return name.split(" ")[1] if not name.startswith("change") else "change"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    set_args(ap, ROOT / "cache" / "beatreal", "bench.beatreal")
    tracker_arg(ap)
    ap.add_argument("--offsets", default="0,3,7",
                    help="ms of extra lead silence, one play per value, comma-separated (default 0,3,7)")
    args = ap.parse_args(argv)
    offsets = [float(v) for v in args.offsets.split(",") if v.strip()]
    import soundfile as sf

    from bench import beatreal
    from mer_live.analysers.beat import BeatConfig

    meta, model, presence, gate = open_set(args.set, beatreal.main, args.presence)
    per: list[dict] = []
    t0 = time.monotonic()
    for m in meta:
        x, sr = sf.read(str(args.set / m["file"]), dtype="float32")
        assert sr == SR
        ref = np.array(m["beats"])
        plays = []
        for d_ms in offsets:
            d = int(round(d_ms * sr / 1000))
            events = run_item(np.concatenate([np.zeros(d, np.float32), x]), sr, model, presence, gate,
                              BeatConfig(tracker=args.beat_tracker, beatnet_model=args.beatnet_model))
            beats = [(s - d / sr, replace(ev, t=ev.t - d / sr)) for s, ev in events if ev.kind == "beat"]
            r = score(ref, beats, m["bpm"], m["change_t"])
            r["offset_ms"] = offset_ms(ref, np.array([ev.t for _, ev in beats]))
            plays.append(r)
        res = {k: float(np.mean([p[k] for p in plays])) for k in plays[0]}
        res["first_max"] = max(p["first"] for p in plays)
        res.update(name=m["name"], cls=tempo_class(m["bpm"]) if m["change_t"] is None else "change",
                   kind=kind_of(m["name"]), f_plays=[round(p["f"], 3) for p in plays])
        per.append(res)
        print(f"{m['name'][:60]:60s} F {res['f']:.3f} CMLt {res['cmlt']:.2f} AMLt {res['amlt']:.2f} "
              f"bpm {res['bpm']:6.1f} first {res['first']:.2f} s off {res['offset_ms']:+.0f} ms "
              f"(F per play {res['f_plays']})"
              + (f" follow {res['follow']:.1f} s" if m["change_t"] is not None else ""), file=sys.stderr)
    body = md_table(HEADER, class_rows(per))
    kinds = []
    for k in ("song", "module", "midi", "change"):
        sel = [r for r in per if r["kind"] == k]
        if sel:
            first = [r["first"] for r in sel]
            kinds.append([k, len(sel), f"{np.mean([r['f'] for r in sel]):.3f}",
                          f"{min(r['f'] for r in sel):.3f}",
                          f"{100 * np.mean([r['acc2'] for r in sel]):.0f} %",
                          f"{np.median(first):.2f} / {np.max(first):.2f}",
                          f"{np.nanmedian([r['offset_ms'] for r in sel]):+.0f}"])
    body += "\n\n" + md_table(["source", "items", "F mean", "F min", "Acc2", "first beat s (median / worst)",
                               "offset ms (median)"], kinds)
    low = [f"{r['name']}: F {r['f']:.2f}" for r in per if r["f"] < 0.7]
    report(args, per, body, "bench_beatreal: beats through the live path on the real-music set"
           + (f" ({args.beat_tracker}, BeatNet model {args.beatnet_model})" if args.beat_tracker != "aubio"
              else " (aubio)"),
           [f"{len(per)} items from `python -m bench.beatreal` (8 recorded songs from Frets on Fire, "
            f"12 tracker modules via libopenmpt, 9 MIDI songs on Hydrogen kits + FluidSynth, 3 cuts; 1 s "
            f"silence then 40 s), each played {len(offsets)} times ({args.offsets} ms more lead "
            f"silence) and its scores averaged; unpaced Pipeline with the shipped models and music gate; "
            f"{time.monotonic() - t0:.0f} s wall on a shared host",
            "items under F 0.70: " + ("; ".join(low) if low else "none"),
            f"worst first beat of any single play: {max(r['first_max'] for r in per):.2f} s"])
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
