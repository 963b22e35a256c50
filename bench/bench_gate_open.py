"""When the music gate first opens on each item of a set, and how much of it it then flags, for the
shipped presence model and (``--before``) another one: the gate alone, mer-analyze's rules.

    python -m bench.bench_gate_open [--set cache/beatreal] [--match song] [--before OLD.onnx]
        [--before-gate 0.8,0.35,0.5,0.8] [--lead 1.0] [--no-record]
    python -m bench.bench_gate_open --files AUDIO... [--seconds 120]    # song starts, printed only

Why: the first beat of a song waits for the music gate where the rhythm gate cannot confirm the
beat (dense recorded rock and metal), so a new presence model can move the beat benches' "first
beat" without touching the tracker. This says, item by item, which gate opens when.

The set is a beat bench's (``bench/beatreal.py``, ``bench/beatset.py``: ``beats.json`` and its
audio, ``--lead`` seconds of silence before the music). Every 0.1 s the presence model hears its
last 2-s window (zero-padded at the start), the phrase cue runs as live (``analyze.file_cue``), and
``music_flags`` runs the gate with the model's card (``--before-gate``: on_prob, off_prob, on_s,
off_s for the ``--before`` model, whose card may predate the gate's defaults). Scores do not
depend on the host.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from bench.common import ROOT, md_table, record, run_cli

HOP_S = 0.1


def gate_timeline(x: np.ndarray, rate: int, presence, gate) -> np.ndarray:
    """The gate's music flag at each 0.1-s hop of ``x`` (model-rate mono), as mer-analyze judges it
    (``analyze.music_of``), each hop's presence window the 2 s before it, zero-padded at the start."""
    from mer_live.analyze import music_of

    hop = int(round(HOP_S * rate))
    ends = np.arange(hop, len(x) + 1, hop)
    n = int(presence.window_samples)
    padded = np.concatenate([np.zeros(n, np.float32), x])
    wins = np.stack([padded[e : e + n] for e in ends])  # the n samples before each end
    return music_of(x, ends, wins, rate, HOP_S, presence, gate=gate)


def db(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(np.asarray(x, np.float64) ** 2)) + 1e-12))


def song_starts(paths: list[str], seconds: float) -> int:
    """``--files``: each file from its first sample through the shipped gate: when it first opens,
    the share flagged from 2 s, and how much quieter the audio before the first opening is than the
    30 s after it (an intro's level under the song's)."""
    from mer_live.analyze import decode
    from mer_live.inference.presence import GateConfig, PresenceModel

    pm = PresenceModel()
    rate = int(pm.sample_rate)
    rows, late = [], 0
    for path in paths:
        x, _dur = decode(path, rate)
        x = x[: int(seconds * rate)]
        flags = gate_timeline(x, rate, pm, GateConfig())
        first_i = int(np.argmax(flags)) if flags.any() else len(flags)
        first = (first_i + 1) * HOP_S
        cut = int(first * rate)
        under = db(x[:cut]) - db(x[cut : cut + 30 * rate]) if flags.any() and cut > rate else float("nan")
        late += first > 5.0
        rows.append([Path(path).parent.name + "/" + Path(path).name, round(first, 1),
                     round(100.0 * float(flags[20:].mean()), 1), round(under, 1)])
        print(" | ".join(str(v) for v in rows[-1]), flush=True)
    print(md_table(["file", "first open (s)", "% flagged from 2 s", "before the opening vs the 30 s "
                    "after (dB)"], rows))
    print(f"{len(rows)} files: the gate first opens later than 5 s into {late}; "
          f"{sum(r[1] > 20 for r in rows)} later than 20 s; mean flagged from 2 s "
          f"{np.mean([r[2] for r in rows]):.1f} %")
    return 0


def main(argv: list[str] | None = None) -> int:
    import soundfile as sf
    import soxr

    from mer_live.inference.presence import GateConfig, PresenceModel

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--set", type=Path, default=ROOT / "cache" / "beatreal")
    ap.add_argument("--match", default="", help="only items whose name contains this")
    ap.add_argument("--before", type=Path, default=None,
                    help="another presence model (.onnx beside its card)")
    ap.add_argument("--before-gate", default="0.8,0.35,0.5,0.8",
                    help="on_prob,off_prob,on_s,off_s for --before (default: the gate of 2026-12-03)")
    ap.add_argument("--lead", type=float, default=1.0, help="seconds of silence before each item's music")
    ap.add_argument("--no-record", action="store_true", help="print only; docs/benchmarks.md untouched")
    ap.add_argument("--files", nargs="+", metavar="AUDIO", help="instead of a set: these files from their "
                    "first sample (song starts: quiet intros), the shipped gate, printed only")
    ap.add_argument("--seconds", type=float, default=120.0, help="with --files: the first this many seconds")
    args = ap.parse_args(argv)
    if args.files:
        return song_starts(args.files, args.seconds)
    items = [m for m in json.loads((args.set / "beats.json").read_text()) if args.match in m["name"]]
    if not items:
        raise SystemExit(f"bench_gate_open: no item of {args.set} matches {args.match!r}")
    models = [("shipped", PresenceModel(), GateConfig())]
    if args.before is not None:
        on_p, off_p, on_s, off_s = (float(v) for v in args.before_gate.split(","))
        models.append(("before", PresenceModel(args.before, verify_sha=False),
                       GateConfig(on_prob=on_p, off_prob=off_p, on_s=on_s, off_s=off_s)))
    rows = []
    for m in items:
        x, sr = sf.read(str(args.set / m["file"]), dtype="float32", always_2d=True)
        row: list = [m["name"]]
        for _label, pm, gate in models:
            rate = int(pm.sample_rate)
            y = soxr.resample(x.mean(axis=1), sr, rate).astype(np.float32)
            flags = gate_timeline(y, rate, pm, gate)
            t = (np.arange(len(flags)) + 1) * HOP_S - args.lead
            first = float(t[np.argmax(flags)]) if flags.any() else float("inf")
            row += [round(first, 1), round(100.0 * float(flags[t >= 2.0].mean()), 1)]
        print(" | ".join(str(v) for v in row), flush=True)
        rows.append(row)
    head = ["item", "shipped: first open (s after the music starts)", "shipped: % flagged from 2 s"]
    if args.before is not None:
        head += [f"{args.before.name}: first open", f"{args.before.name}: % flagged from 2 s"]
    body = md_table(head, rows)
    if args.no_record:
        print(body)
    else:
        record(f"bench_gate_open: when the music gate first opens ({args.set.name}, {args.match or 'all'})",
               body, notes=["the gate alone over 2-s windows every 0.1 s, mer-analyze's rules "
                            "(silence, phrase cue, the model's gate)"])
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
