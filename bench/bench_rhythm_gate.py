"""The beat tracker's rhythm gate alone: how soon it opens on grooves, how often on speech and applause.

    python -m bench.bench_rhythm_gate [--set cache/beatset] [--voices N] [--no-record]

Why a bench of its own: ``RhythmGate`` trades the first beat of a drums-only intro against
beats sent on talk between songs, and any change to ``Periodicity`` or the gate moves both. One
``BeatTracker`` (no models, no music gate) per item, fed 512-sample blocks:

* the known-grid set of ``bench/beatset.py``: seconds from the first true beat (1.0 s) to the
  gate opening (the first beat sent follows at the next beat of the grid, ~0.1-0.35 s later);
* negatives from ``train.negatives``: 20 s of ``talk`` for each espeak-ng voice (seed = its index)
  and six 10-s ``applause`` renderings at half scale, at 48 kHz: how many open the gate, and
  the share of their time it stays open.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from bench.common import ROOT, md_table, record, run_cli

SR_NEG = 48000


def gate_trace(x: np.ndarray, sr: int, block: int = 512) -> tuple[float | None, float]:
    """(stream time the rhythm gate first opened or None, share of the audio it was open)."""
    from mer_live.analysers.beat import BeatTracker

    bt = BeatTracker()
    bt.reset(sr)
    first, open_blocks, n = None, 0, 0
    for i in range(0, len(x) - block + 1, block):
        bt.process(x[i:i + block], (i + block - 1) / sr, 0.0)
        n += 1
        if bt.rhythm:
            open_blocks += 1
            if first is None:
                first = (i + block) / sr
    return first, open_blocks / max(1, n)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", type=Path, default=ROOT / "cache" / "beatset",
                    help="the set's folder (built by `python -m bench.beatset` when absent)")
    ap.add_argument("--voices", type=int, default=0, help="only the first N espeak-ng voices (0: all)")
    ap.add_argument("--no-record", action="store_true",
                    help="print only, do not append to docs/benchmarks.md")
    args = ap.parse_args(argv)
    import soundfile as sf

    from bench.beatset import LEAD_S
    from train.negatives import applause, talk, voices

    t0 = time.monotonic()
    meta_path = args.set / "beats.json"
    if not meta_path.is_file():
        from bench import beatset
        beatset.main(["--out", str(args.set)])
    opens: list[tuple[float, str]] = []
    for m in json.loads(meta_path.read_text()):
        x, sr = sf.read(str(args.set / m["file"]), dtype="float32")
        first, _ = gate_trace(x, sr)
        opens.append((np.inf if first is None else first - LEAD_S, m["name"]))
    vs = [v for e, v in voices() if e == "espeak-ng"]
    if args.voices:
        vs = vs[:args.voices]
    talk_open: list[tuple[str, float]] = []
    for k, v in enumerate(vs):
        first, share = gate_trace(talk(20.0, SR_NEG, "espeak-ng", v, seed=k).astype(np.float32), SR_NEG)
        if first is not None:
            talk_open.append((v, share))
    app_open = 0
    for s in range(6):
        first, _ = gate_trace((0.5 * applause(10.0, SR_NEG, seed=9001 + s)).astype(np.float32), SR_NEG)
        app_open += first is not None
    t = np.array([o for o, _ in opens])
    worst = max(opens)
    rows = [["grooves (bench/beatset.py)", len(opens),
             f"{np.median(t):.2f} / {worst[0]:.2f} s ({worst[1]})", "-"],
            [f"talk ({len(vs)} espeak-ng voices, 20 s)", len(vs), f"{len(talk_open)} opened",
             f"{100 * np.mean([s for _, s in talk_open]) if talk_open else 0:.0f} %"],
            ["applause (10 s)", 6, f"{app_open} opened", "-"]]
    body = md_table(["material", "items",
                     "gate opens: median / worst after the first beat, or how many opened",
                     "share of the time open (those that opened)"], rows)
    print(body)
    if not args.no_record:
        record("bench_rhythm_gate: the rhythm gate on grooves, talk and applause", body,
               ["one BeatTracker per item (no models, no music gate), 512-sample blocks; "
                f"{time.monotonic() - t0:.0f} s wall on a shared host",
                "talk voices that opened it (share of their 20 s open): "
                + (", ".join(f"{v} ({100 * s:.0f} %)" for v, s in talk_open) or "none")])
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
