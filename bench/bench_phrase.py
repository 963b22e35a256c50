"""The phrase cue's time per hop beside the presence model's, in the same run (issue #25's
context for the music gate; issue #28's CPU budget: the whole live path aims at <= 5 % of a core).

Why: the cue (mer_live.inference.phrase: one 4096-point FFT and a 6-s ring) would run every 0.1-s
hop beside the presence model; its cost decides whether a context gate fits the budget.

    python -m bench.bench_phrase [--runs 3000]
"""

from __future__ import annotations

import argparse

import numpy as np

from bench.common import md_table, positive_int, record, run_cli, stats, time_calls


def main(argv: list[str] | None = None) -> int:
    from mer_live.inference import phrase
    from mer_live.inference.presence import PresenceModel

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=positive_int, default=3000)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    pres = PresenceModel(provider="cpu", threads=1)
    w = (0.1 * rng.standard_normal((1, pres.window_samples))).astype(np.float32)
    track = phrase.PhraseTrack(6.0)
    for _ in range(track.n):  # a full ring, as in a show
        track.push(w[0, -phrase.FRAME :])
    rows = []
    for name, fn in (("presence model (predict, 1 thread)", lambda: pres.predict(w)),
                     ("phrase cue (PhraseTrack.push)", lambda: track.push(w[0, -phrase.FRAME :])),
                     ("  of which frame_chroma", lambda: phrase.frame_chroma(w[:, -phrase.FRAME :]))):
        s = stats(time_calls(fn, args.runs, warmup=50)).scaled(1000)
        rows.append([name, s.median, s.p99, f"{s.median / 100:.2%}"])
    body = md_table(["per hop", "median ms", "p99 ms", "share of one core at 10 hops/s"], rows)
    record("Phrase cue time per hop (bench_phrase)", body, [
        f"{args.runs} timed calls each after 50 warm-up calls, one process, one after the other.",
    ])
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
