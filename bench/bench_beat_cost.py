"""The beat tracker's own CPU: ``BeatTracker.process`` alone over the demo at a device rate.

``python -m bench.bench_beat_cost [--rate 48000] [--seconds 30] [--rounds 3] [--beat-tracker T]``: the
bundled demo,
resampled to ``--rate``, fed in 20-ms blocks as a capture device would; thread CPU time per second
of audio, as % of one core (each round on a fresh tracker after one warm-up run). Prints, records
nothing: the tracker's share of the whole process is in ``bench_stages``. ``--beat-tracker beatnet``:
BeatNet's port (``mer_live.analysers.beatnet``: aubio's onsets and rhythm gate plus the resampler,
the front end, one ONNX LSTM step and the particle filter per 20-ms frame).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import soxr

from mer_live.analysers.beat import BEAT_TRACKERS, BeatConfig, make_tracker
from mer_live.sources.demo import demo_audio


def cost(x: np.ndarray, rate: int, block: int, tracker: str = "aubio") -> tuple[float, int]:
    """(CPU seconds, events) of one tracker over ``x``."""
    bt = make_tracker(BeatConfig(tracker=tracker))
    bt.reset(rate)
    n = 0
    t = time.thread_time()
    for i in range(0, len(x) - block, block):
        n += len(bt.process(x[i:i + block], (i + block) / rate, 0.0))
    return time.thread_time() - t, n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=int, default=48000)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--beat-tracker", default=BeatConfig().tracker, choices=BEAT_TRACKERS)
    args = ap.parse_args(argv)
    x = demo_audio(22050)
    if args.rate != 22050:
        x = soxr.resample(x, 22050, args.rate)
    x = np.asarray(x, np.float32)[: int(args.seconds * args.rate)]
    block = args.rate // 50
    cost(x, args.rate, block, args.beat_tracker)  # warm-up: imports, aubio's first allocations
    for r in range(args.rounds):
        cpu, n = cost(x, args.rate, block, args.beat_tracker)
        print(f"{args.beat_tracker} round {r + 1}: {n} events, {cpu:.3f} s CPU for "
              f"{len(x) / args.rate:.0f} s of audio = {100 * cpu * args.rate / len(x):.2f} % of one core, "
              f"{1000 * cpu * block / len(x):.3f} ms per {1000 * block / args.rate:.0f}-ms block")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
