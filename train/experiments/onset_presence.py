"""Would the music gate open sooner if the presence model heard only the sound since it began? A
probe (issue #31: the first beat waits for the gate, which opens 1.8-2.2 s into a song because
the model's 2-s window must fill with music first: `python -m bench.bench_gate_open`).

    python -m train.experiments.onset_presence [--min-s 0.5 1.0] [--neg-cache /work/cache-gate] [--model M]

The emotion model already does this after a break (``live/estimator.py``, ``_music_part``: the
music since the gate opened, repeated to fill its window). Here the same rule goes in front of the
presence model: from ``min_s`` of sound after the input was silent (the runtime's silence rule:
-60 dBFS for 0.5 s) until the window is full, the model hears that sound repeated. Each item is
judged as the live gate judges it, every 0.1 s on max(p, phrase head) with the shipped card's
gate, once as shipped ("plain") and once with the rule ("onset").

Music: the 32 real items of `bench/beatreal.py` and the 26 drum pieces of `bench/beatset.py` (each
file has a 1-s silent lead of its own), the first 20 s; the time is from the music's start.
Not music: the presence corpus' talk, applause, crowd, tunings and line checks (the shipped model
trained on them: in-sample, so the shares are lower than the out-of-fold caps), each after 1 s of
silence; the share of hops flagged music from 2 s in.

Measured 2026-12-08 (docs/show.md, "The first beat waits for the gate"): the rule opens the gate
0.9 s (min_s 1.0) to 1.4 s (0.5) sooner on music, but tunings and line checks, which start from
silence and repeat, are then heard as music far more often (tunings 1.4 -> 5.8-12.2 %), and talk
twice as often: not adopted.
"""

from __future__ import annotations

import argparse
import glob
import json
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from mer_live.common.levels import rms_db
from mer_live.common.silence import SilenceClock
from mer_live.inference.phrase import FRAME, PhraseTrack
from mer_live.inference.presence import GateConfig, MusicGate, PresenceModel

HOP_S = 0.1
SET_LEAD_S = 1.0  #: the silent lead inside each file of bench/beatreal.py and bench/beatset.py
NEG_KINDS = ("speech", "applause", "crowd", "tuning", "line_check")


def gate_flags(pm: PresenceModel, x: np.ndarray, onset_min_s: float | None) -> np.ndarray:
    """The gate's flag every 0.1 s of ``x`` (model rate); ``onset_min_s``: the onset rule's least
    sound before judging (None: as shipped)."""
    sr, n = pm.sample_rate, pm.window_samples
    hop = int(round(HOP_S * sr))
    gate = MusicGate(GateConfig.from_dict(pm.card.extra["gate"]) if "gate" in pm.card.extra else GateConfig())
    track = PhraseTrack(pm.phrase.context_s) if pm.phrase is not None else None
    clock = SilenceClock(hop, sr)  # the live stream's silence rule
    onset, flags = None, []
    for end in range(hop, len(x) + 1, hop):
        silent = clock.update(rms_db(x[end - hop:end]))
        if silent:
            onset = None
        elif onset is None and clock.quiet == 0:  # the first loud hop after silence
            onset = end - hop
        heard = not silent and end >= n
        w = x[end - n:end] if end >= n else np.concatenate([np.zeros(n - end, np.float32), x[:end]])
        if onset_min_s is not None and onset is not None and end - onset < n:
            since = end - onset
            if since < onset_min_s * sr:
                heard = False
            else:
                w = np.tile(x[onset:end], -(-n // since))[-n:]
        p = float(pm.predict(w[None].astype(np.float32))[0]) if heard else 0.0
        if track is not None:
            cue = track.push(x[end - FRAME:end] if end >= FRAME else np.zeros(FRAME, np.float32))
            if heard:
                p = float(pm.phrase.raise_(np.float32(p), cue)[0])
        flags.append(gate.update(p, HOP_S, silent=not heard))
    return np.array(flags)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--min-s", type=float, nargs="*", default=[0.5, 1.0])
    ap.add_argument("--model", help="another presence model (.onnx and its card; default: the shipped one)")
    ap.add_argument("--sets", nargs="+", default=["cache/beatreal", "cache/beatset"])
    ap.add_argument("--neg-cache", default="/work/cache-gate", help="holds presence-neg-*/ (train.presence)")
    args = ap.parse_args()
    pm = PresenceModel(args.model, verify_sha=False) if args.model else PresenceModel()
    sr = pm.sample_rate
    modes: list[tuple[str, float | None]] = [("plain", None)] + [(f"onset {m:g} s", m) for m in args.min_s]
    music = [f for s in args.sets for f in sorted(glob.glob(f"{s}/[0-9]*.wav"))]
    rows = []
    opens: dict[str, list[float]] = {m: [] for m, _ in modes}
    for f in music:
        y, fsr = sf.read(f, dtype="float32", always_2d=True)
        x = soxr.resample(y.mean(axis=1), fsr, sr).astype(np.float32)[: int(20 * sr)]
        for name, m in modes:
            fl = gate_flags(pm, x, m)
            opens[name].append((np.argmax(fl) + 1) * HOP_S - SET_LEAD_S if fl.any() else np.inf)
    for name, _ in modes:
        o = np.array(opens[name])
        rows.append([f"music ({len(o)} items): gate first open, median / p90 / worst (s)", name,
                     f"{np.median(o):.2f} / {np.percentile(o, 90):.2f} / {o.max():.2f}"])
    folder = sorted(glob.glob(f"{args.neg_cache}/presence-neg-*"))
    if folder:
        meta = json.loads(Path(folder[0], "index.json").read_text())
        lead = np.zeros(sr, np.float32)
        for kind in NEG_KINDS:
            its = [m for m in meta if m["kind"] == kind]
            for name, m in modes:
                share, ever = [], 0
                for it in its:
                    y = np.load(Path(folder[0], f"{it['name']}.npy")).astype(np.float32)
                    x = np.concatenate([lead, y])
                    fl = gate_flags(pm, x, m)
                    share.append(fl[int(3.0 / HOP_S):].mean())
                    ever += int(fl.any())
                rows.append([f"{kind} ({len(its)} items): flagged music from 2 s / items ever open", name,
                             f"{100 * np.mean(share):.2f} % / {ever}"])
    print("| what | rule | measured |\n|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
