"""BeatNet (CRNN + particle filter, causal "online" mode) on the known-grid set, scored as bench_beatset.

    python -m bench.bench_beatnet [--set cache/beatset] [--model 1] [--no-record] [--json out.json]

Why: issue #31 item 3 asks to try an alternative tracker with a licence we may ship and weights
in a package. BeatNet (github.com/mjhydri/BeatNet, CC BY 4.0; its PyPI wheel carries the CRNN
weights) is causal in its "online" mode: the CRNN is a unidirectional LSTM over 20-ms frames
(each 64-ms frame centred on its time: 32 ms of look-ahead) and the particle filter decides a
beat at the frame it is in. Here it runs on each item of ``bench/beatset.py`` resampled to
22.05 kHz, fresh filter per item (seeded), and the beats are scored with bench_beatset's own
``score``: F-measure, CMLt/AMLt, Acc1/Acc2, first beat. A beat is "sent" at its frame time +
32 ms (the look-ahead); its tempo is the particle filter's own at that beat (the beat interval
of the median particle). BeatNet has no gate: beats in the 1-s silence lead
are counted apart (``lead beats``) and not as the first beat.

BeatNet is bench-side only (torch, madmom): it is not a dependency of mer-live. Install notes
(Python 3.11, numpy 2.x), as done for this bench: madmom 0.16.1 is the last release and needs
building (``pip install cython``; sources patched for ``collections.abc`` and the removed numpy
aliases ``np.float``/``np.int``/...); BeatNet 1.1.3 pins ``numba==0.54.1`` (no Python 3.11
build), so it is installed with ``--no-deps`` and its ``np.in1d`` calls changed to ``np.isin``;
librosa and pyaudio are imported but used only for file loading and the microphone mode, so
empty stand-ins do. Point ``--path`` at that install (default /tmp/bnenv:/tmp/bnshim).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass

import numpy as np

from bench.beatset import LEAD_S, SR, tempo_class
from bench.bench_beatset import HEADER, class_rows, report, score, set_args
from bench.common import ROOT, md_table, run_cli

LOOKAHEAD_S = 0.032  #: half of BeatNet's 64-ms analysis frame (madmom frames are centred)


@dataclass
class Beat:
    """What bench_beatset.score reads of a beat event."""

    t: float
    bpm: float


def track(net, x: np.ndarray, sr: int, seed: int) -> list[tuple[float, float]]:
    """BeatNet's online (causal) beats of one item: (time s, the filter's tempo then, BPM).

    The CRNN runs over the whole item (unidirectional: causal but for its 32-ms frame centring),
    the particle filter frame by frame, as in BeatNet's stream mode, so that its own tempo (the
    interval of the median particle) can be read at each beat."""
    from math import gcd

    from BeatNet.particle_filtering_cascade import particle_filter_cascade
    from scipy.signal import resample_poly

    if x.ndim > 1:
        x = x.mean(axis=1)
    g = gcd(sr, 22050)
    y = resample_poly(x, 22050 // g, sr // g).astype(np.float32)
    np.random.seed(seed)
    pf = particle_filter_cascade(beats_per_bar=[], fps=50, plot=[], mode="online")
    act = net.activation_extractor_online(y)
    out: list[tuple[float, float]] = []
    for a in act:
        n = len(pf.path)
        pf.process(a[None, :])
        if len(pf.path) > n:
            interval = pf.st.state_intervals[int(np.median(pf.particles))]
            out.append((float(pf.path[-1][0]), 60.0 / (interval * pf.T)))
    return out


def as_events(beats: list[tuple[float, float]]) -> list[tuple[float, Beat]]:
    """(sent, beat) pairs: sent at the beat's frame time + the look-ahead."""
    return [(t + LOOKAHEAD_S, Beat(t, bpm)) for t, bpm in beats]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    set_args(ap, ROOT / "cache" / "beatset", "bench.beatset")
    ap.add_argument("--model", type=int, default=1, choices=(1, 2, 3),
                    help="BeatNet weights: 1 GTZAN held out, 2 Ballroom held out, 3 Rock corpus held out")
    ap.add_argument("--path", default="/tmp/bnenv:/tmp/bnshim",
                    help="where BeatNet and the patched madmom are installed (prepended to sys.path)")
    ap.add_argument("--seed", type=int, default=0,
                    help="the particle filter's seed is this + the item's index")
    ap.add_argument("--talk", type=int, default=0,
                    help="also run the first N espeak-ng voices' 20-s talk (as bench_rhythm_gate): "
                         "BeatNet has no gate")
    args = ap.parse_args(argv)
    import soundfile as sf

    for p in reversed(args.path.split(":")):
        if p and p not in sys.path:
            sys.path.insert(0, p)
    try:
        from BeatNet.BeatNet import BeatNet
    except ImportError as e:
        raise ImportError(f"BeatNet not importable ({e}); see this script's docstring for the install") from e
    meta = json.loads((args.set / "beats.json").read_text())
    net = BeatNet(args.model, mode="online", inference_model="PF", plot=[], thread=False)
    per: list[dict] = []
    t0 = time.monotonic()
    for i, m in enumerate(meta):
        x, sr = sf.read(str(args.set / m["file"]), dtype="float32")
        assert sr == SR
        t1 = time.monotonic()
        out = track(net, x, sr, seed=args.seed + i)
        dt = time.monotonic() - t1
        lead = sum(t < LEAD_S - 0.07 for t, _ in out)
        beats = [(s, b) for s, b in as_events(out) if b.t >= LEAD_S - 0.07]
        res = score(np.array(m["beats"]), beats, m["bpm"], m["change_t"])
        res.update(name=m["name"], cls=tempo_class(m["bpm"]) if m["change_t"] is None else "change",
                   lead=lead, wall=dt)
        per.append(res)
        print(f"{m['name']:55s} F {res['f']:.3f} CMLt {res['cmlt']:.2f} AMLt {res['amlt']:.2f} "
              f"bpm {res['bpm']:6.1f} first {res['first']:.2f} s lead beats {lead} ({dt:.0f} s)"
              + (f" follow {res['follow']:.1f} s" if m["change_t"] is not None else ""), file=sys.stderr)
    rows = class_rows(per)
    for row in rows:  # and the beats BeatNet sent in the second of silence before each item
        row.append(sum(r["lead"] for r in per if row[0] == "all" or r["cls"] == row[0]))
    talk_note = ""
    if args.talk:
        from bench.bench_rhythm_gate import SR_NEG
        from train.negatives import talk, voices

        vs = [v for e, v in voices() if e == "espeak-ng"][:args.talk]
        rates = []
        for k, v in enumerate(vs):
            out = track(net, talk(20.0, SR_NEG, "espeak-ng", v, seed=k).astype(np.float32), SR_NEG, seed=k)
            rates.append(len(out) / 20.0)
        rates_a = np.array(rates)
        talk_note = (f"talk, the first {len(vs)} espeak-ng voices (20 s each, seed = index, as "
                     f"bench_rhythm_gate): {int(np.sum(rates_a > 0))} got beats; beats per second "
                     f"median {np.median(rates_a):.2f}, "
                     f"max {np.max(rates_a):.2f}")
        print(talk_note, file=sys.stderr)
    body = md_table([*HEADER, "beats in the silent lead"], rows)
    report(args, per, body, f"bench_beatnet: BeatNet online (model {args.model}, particle filter) on the "
           "known-grid set",
           [f"{len(per)} items from `python -m bench.beatset`, resampled to 22.05 kHz, no gate; scored with "
            f"bench_beatset.score; {time.monotonic() - t0:.0f} s wall on a shared host (BeatNet 1.1.3, "
            "madmom 0.16.1 patched, torch CPU)", *([talk_note] if talk_note else [])],
           misses_are="tempo of the last 15 s")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
